//! Every default the routing file and the admin API apply to a field left out, in one place: validation builds
//! the snapshot with these, and the admin API shows and stores the same values, so the two cannot drift.
//! Numeric limits whose default sits beside their allowed range stay with that range in [`crate::validate`].

/// The listener for agents and the proxied routes when `[listeners] public` is absent.
pub const PUBLIC_ADDR: &str = "0.0.0.0:8080";

/// The listener for the admin API when `[listeners] admin` is absent (loopback: never exposed by default).
pub const ADMIN_ADDR: &str = "127.0.0.1:9090";

/// Methods a node allows unless it lists its own (never `TRACE` or `CONNECT`).
pub const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The key prefix of idguard's objects in Redis when `[store] redis_prefix` is absent.
pub const REDIS_PREFIX: &str = "idguard";

/// How many audit records the Redis stream keeps when `[store] audit_stream_max_len` is absent.
pub const AUDIT_STREAM_MAX_LEN: u64 = 100_000;

/// The `typ` of access tokens (RFC 9068): what an issuer accepts unless it lists `accepted_typ`, and what
/// idguard's own identity service signs.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Clock leeway for `exp` and `nbf`, seconds, of an issuer without `leeway_seconds` (and of idguard's own).
pub const ISSUER_LEEWAY_SECONDS: u64 = 30;

/// How often a JWKS URL is refetched, seconds, for an issuer without `jwks_refresh_seconds` (and idguard's own).
pub const JWKS_REFRESH_SECONDS: u64 = 300;

/// The `aud` of agents' tokens for the proxy's outbound routes when `[identity] audience` is absent.
pub const PROXY_AUDIENCE: &str = "urn:idguard:proxy";
/// How far ahead of now a `private_key_jwt` assertion's `exp` may be, by default (`[identity]
/// max_assertion_lifetime_seconds`): an hour, what common OAuth client libraries sign.
pub const MAX_ASSERTION_LIFETIME_SECONDS: u64 = 3_600;

/// How agents and clients authenticate to the identity service when `auth` is absent.
pub const CLIENT_AUTH: &str = "client_secret";

/// Whether an agent or client without `enabled` is enabled.
pub const ENABLED: bool = true;

/// The scope of an agent's permission when `permission.scope` is absent.
pub const AGENT_PERMISSION_SCOPE: &str = "agent.access";

/// The audience identifier of an agent without `audience`: `urn:idguard:agent:<id>`. It is as valid as the id
/// it is made from, so validation checks only an explicit audience.
pub fn agent_audience(agent_id: &str) -> String {
    format!("urn:idguard:agent:{agent_id}")
}

/// The name of an agent's permission when `permission.name` is absent: `<id> access`.
pub fn agent_permission_name(agent_id: &str) -> String {
    format!("{agent_id} access")
}

/// The display name of an object without `name`: its id.
pub fn display_name(name: Option<&str>, id: &str) -> String {
    name.unwrap_or(id).to_owned()
}

/// The allowed range of an agent's `token_ttl_seconds` (the lifetime of the tokens it obtains for itself): one
/// minute to one day, the bounds of `[identity] access_token_ttl_seconds`, which applies when it is absent.
pub const AGENT_TOKEN_TTL_SECONDS: std::ops::RangeInclusive<u64> = 60..=86_400;

/// The message for an agent's `token_ttl_seconds` outside [`AGENT_TOKEN_TTL_SECONDS`], shared by validation and
/// the admin API.
pub fn agent_token_ttl_rule(got: u64) -> String {
    format!(
        "must be between {} and {} seconds (1 minute to 24 hours), got {got}",
        AGENT_TOKEN_TTL_SECONDS.start(),
        AGENT_TOKEN_TTL_SECONDS.end()
    )
}
