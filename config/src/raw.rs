//! The routing file as written: serde types that mirror the TOML one to one. Every table refuses unknown fields,
//! so a typo is an error rather than a silently ignored setting. Nothing here is validated beyond types;
//! [`crate::validate`] turns a [`RawConfig`] into a [`crate::Snapshot`].
//!
//! `docs/configuration.md` documents every field; `config/idguard.example.toml` is a commented example.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The whole routing file.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Declares that the file may hold nothing else: a file of only whitespace and comments is refused (a file
    /// truncated mid-save must not remove every route), so an empty topology is written `allow_empty = true`.
    /// Kept first: TOML wants top-level values before any table.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_empty: bool,
    /// Listener addresses and TLS (static: read at start only).
    #[serde(default)]
    pub listeners: RawListeners,
    /// Request size limits.
    #[serde(default)]
    pub limits: RawLimits,
    /// How idguard connects to upstreams.
    #[serde(default)]
    pub upstream: RawUpstream,
    /// How the file is watched.
    #[serde(default)]
    pub reload: RawReload,
    /// Token verification settings.
    #[serde(default)]
    pub tokens: RawTokens,
    /// The built-in identity service (token endpoint, discovery, exchange). Off unless `issuer` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<RawIdentity>,
    /// The admin API's store and the console's quotas.
    #[serde(default)]
    pub store: RawStore,
    /// Admin API policy.
    #[serde(default)]
    pub admin: RawAdmin,
    /// Token issuers whose access tokens the proxy accepts.
    #[serde(default)]
    pub issuers: Vec<RawIssuer>,
    /// Agents: the identities that call through the proxy.
    #[serde(default)]
    pub agents: Vec<RawAgent>,
    /// Stored credentials (API keys), sealed or taken from the environment.
    #[serde(default)]
    pub credentials: Vec<RawCredential>,
    /// LLM nodes, routed at `/llm/{id}/...`.
    #[serde(default)]
    pub llm: Vec<RawNode>,
    /// External-service nodes, routed at `/ext/{id}/...`.
    #[serde(default)]
    pub external: Vec<RawNode>,
    /// Directory: organizational units (a tree).
    #[serde(default)]
    pub organizations: Vec<RawOrganization>,
    /// Directory: groups.
    #[serde(default)]
    pub groups: Vec<RawGroup>,
    /// Directory: users.
    #[serde(default)]
    pub users: Vec<RawUser>,
    /// Client applications allowed to call agents.
    #[serde(default)]
    pub clients: Vec<RawClient>,
    /// Inbound authorizations: client → agent edges.
    #[serde(default)]
    pub inbound: Vec<RawInbound>,
    /// Enterprise services: internal applications that accept idguard-issued tokens.
    #[serde(default)]
    pub enterprise: Vec<RawService>,
    /// Outbound authorizations: agent → node edges.
    #[serde(default)]
    pub outbound: Vec<RawEdge>,
    /// The objects [`crate::store::merge`] appended from the admin API's store, by kind and id. Never read from
    /// or written to a file: validation marks what these build as API-managed (`Origin::Api`), which decides how
    /// strictly the proxy checks the addresses it connects to for them.
    #[serde(skip)]
    pub api_managed: std::collections::HashSet<(crate::store::Kind, String)>,
}

/// `[listeners]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawListeners {
    /// Public (data-plane) address, default `0.0.0.0:8080`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public: Option<String>,
    /// Admin address (metrics, health), default `127.0.0.1:9090`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
    /// TLS for the public listener; plain HTTP when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<RawTls>,
    /// TLS for the admin listener, with optional client certificates; plain HTTP when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_tls: Option<RawAdminTls>,
}

/// `[listeners.admin_tls]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdminTls {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// PEM CA certificates an operator's client certificate must chain to; no client certificates when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
    /// Whether a client certificate is `required` (the default with `client_ca_file`) or `optional`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_auth: Option<crate::snapshot::ClientCertAuth>,
}

/// `[listeners.tls]`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// `[limits]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Largest total size of request headers, bytes (default 32768).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_header_bytes: Option<usize>,
    /// Most request headers (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_headers: Option<usize>,
    /// Longest request target, bytes (default 8192).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_uri_bytes: Option<usize>,
    /// Largest request body, bytes (default 10 MiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// How long a client may take to send its request headers, ms (default 10000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header_read_timeout_ms: Option<u64>,
    /// How long a new connection may take (TLS handshake included) before its first bytes tell HTTP/1 from
    /// HTTP/2, ms (default 10000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bytes_timeout_ms: Option<u64>,
    /// How long an HTTP/2 connection may stay without an open stream, ms (default 60000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http2_idle_timeout_ms: Option<u64>,
    /// How often an HTTP/2 connection is pinged, ms (default 30000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http2_keepalive_interval_ms: Option<u64>,
    /// How long a ping may go unanswered before the connection is closed, ms (default 20000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http2_keepalive_timeout_ms: Option<u64>,
    /// How long a request body may send nothing before the request fails, ms (default 30000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_idle_timeout_ms: Option<u64>,
    /// Most open connections on the public listener (default 10000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<usize>,
    /// Most open connections from one client address on the public listener; 0: no per-address cap
    /// (default 1000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_connections_per_ip: Option<usize>,
}

/// `[upstream]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// TCP connect timeout, ms (default 5000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    /// Time from sending the request to the upstream's response headers, ms (default 300000: LLMs think).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_header_timeout_ms: Option<u64>,
    /// How long an idle pooled connection is kept, ms (default 90000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool_idle_timeout_ms: Option<u64>,
    /// Extra PEM CA certificates trusted for upstream TLS, besides the webpki roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extra_ca_file: Option<PathBuf>,
}

/// `[reload]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawReload {
    /// How often the file is checked for changes, ms (default 1000; 0 turns watching off, SIGHUP still works).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch_interval_ms: Option<u64>,
}

/// `[store]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// M2M application licenses: every agent uses one (default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub m2m_licenses: Option<u64>,
    /// Most stored credentials (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_credentials: Option<u64>,
    /// Redis URL for several replicas sharing the topology (default: the embedded store). Read at start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel (default `idguard`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_prefix: Option<String>,
    /// How long Redis may be unreachable before `/readyz` reports it, ms (default 15000).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_staleness_ms: Option<u64>,
    /// How long the last topology keeps being served while Redis is unreachable, ms (default 300000); past it
    /// the proxy answers 503.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_max_staleness_ms: Option<u64>,
    /// Redis mode: how many audit records the shared stream `<p>:audit` keeps (approximately; oldest dropped
    /// first; default [`crate::defaults::AUDIT_STREAM_MAX_LEN`]). Each replica's local `audit.log` keeps
    /// everything it wrote. Read at start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit_stream_max_len: Option<u64>,
    /// `redis_url` names (comma-separated) seed nodes of a Redis Cluster (default false). Read at start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_cluster: Option<bool>,
    /// PEM CA certificate(s) a `rediss://` server may chain to, in addition to the platform's roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_ca_file: Option<PathBuf>,
    /// PEM client certificate chain for a `rediss://` server that asks for one (with `redis_client_key_file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_client_cert_file: Option<PathBuf>,
    /// PEM private key of `redis_client_cert_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_client_key_file: Option<PathBuf>,
    /// How long connecting to Redis (TCP, TLS, AUTH) may take, ms (default 500).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_connect_timeout_ms: Option<u64>,
    /// How long one Redis call may wait for its answer, ms (default 500).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_response_timeout_ms: Option<u64>,
    /// Never accepted: present only so that a password written here is refused with a message saying where it
    /// belongs (`IDGUARD_REDIS_PASSWORD` / `IDGUARD_REDIS_PASSWORD_FILE`). Its value is discarded unread.
    #[serde(default, skip_serializing)]
    pub redis_password: Option<serde::de::IgnoredAny>,
}

/// `[admin]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Upstream hosts the admin API may point nodes at despite the SSRF rules (loopback, private ranges, plain
    /// http); the proxy then reaches them under the routing file's address rule. Empty by default; meant for tests
    /// and deliberate internal upstreams.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream_allow_hosts: Option<Vec<String>>,
}

/// `[tokens]`.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokens {
    /// Most verified tokens cached (default 100000; 0 verifies every request in full). Read at start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_entries: Option<usize>,
}

/// `[identity]`: idguard's own authorization server, served on the public listener.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    /// The issuer identifier: the public base URL agents reach idguard at, e.g. `https://idguard.example.com`.
    /// Omitted or `"auto"`: derived from the public listener's bound address (`http://127.0.0.1:PORT`, `https`
    /// with `[listeners.tls]`), so a server on port 0 names the port it got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The `aud` of agents' tokens for the proxy's outbound routes (default `urn:idguard:proxy`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// Lifetime of access tokens, seconds (default 900, 60..=86400).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token_ttl_seconds: Option<u64>,
    /// Longest lifetime of an exchanged token, seconds (default 300, 30..=3600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange_max_ttl_seconds: Option<u64>,
    /// How often the signing key rotates, seconds (default 86400, at least 60).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_key_rotation_seconds: Option<u64>,
    /// Also accept `private_key_jwt` assertions whose `aud` is the token endpoint URL (or the URL of the endpoint
    /// the assertion is sent to), as RFC 7523 allows and common clients send (default true; false: the issuer
    /// only, which closes audience injection — see docs/identity.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accept_token_endpoint_audience: Option<bool>,
    /// Longest lifetime of a `private_key_jwt` assertion, seconds from now to its `exp` (default 3600,
    /// 60..=86400); each `jti` is remembered that long.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_assertion_lifetime_seconds: Option<u64>,
    /// Failed client authentications allowed per client per minute before 429 (default 50).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_failed_auth_per_minute: Option<u32>,
    /// Deepest `act` nesting an exchange accepts (default 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_act_depth: Option<usize>,
}

/// `[[issuers]]`: a token issuer the proxy trusts.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawIssuer {
    /// The exact `iss` value of its tokens.
    pub issuer: String,
    /// The `aud` value tokens for this proxy carry (exactly this, alone).
    pub audience: String,
    /// A JWKS file (JSON `{"keys": [...]}`); relative paths are relative to the routing file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL (https only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// Accepted `typ` header values, compared as media types (default `["at+jwt"]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accepted_typ: Option<Vec<String>>,
    /// Clock leeway for `exp` and `nbf`, seconds (default 30, at most 60).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leeway_seconds: Option<u64>,
    /// How often a JWKS URL is refetched even without an unknown `kid`, seconds (default 300).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_refresh_seconds: Option<u64>,
}

/// `[[agents]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    /// Agent ID: the `client_id` (or `sub`) of its tokens.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Audience identifier: the `aud` of client tokens for this agent (default `urn:idguard:agent:<id>`);
    /// immutable once saved through the API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// A disabled agent's tokens are refused (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The agent's permission (default: `agent.access`, auto mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permission: Option<RawAgentPermission>,
    /// How the agent authenticates to the identity service: `client_secret` or `private_key_jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    /// Client secrets, as keyed hashes only (issued through the admin API, shown once).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<RawClientSecret>,
    /// Registered public keys for `private_key_jwt`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<RawPublicKey>,
    /// Where the inbound gateway (`/agents/{id}/...`) forwards client calls (https, or http to loopback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Lifetime of the access tokens the agent obtains for itself, seconds (default: `[identity]
    /// access_token_ttl_seconds`; 60..=86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ttl_seconds: Option<u64>,
}

/// `[[clients]]`: a client application that calls agents.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawClient {
    /// The client's `client_id`; unique across agents, clients and services.
    pub id: String,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Redirect URIs for the authorization code flow (http or https; a `#` must be written `%23`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    /// `client_secret` (default) or `private_key_jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<String>,
    /// Client secrets, as keyed hashes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<RawClientSecret>,
    /// Registered public keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<RawPublicKey>,
    /// Users authorized to use the client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// Groups whose members may use it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Organizational units (with sub-units) whose members may use it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizations: Vec<String>,
    /// A disabled client's tokens are refused (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// `[[inbound]]`: the client may call the agent with these of the agent's permission scopes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawInbound {
    /// Client id.
    pub client: String,
    /// Agent id.
    pub agent: String,
    /// Granted scopes: each must be the agent's permission scope.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// A client secret as stored: its id, when it was made, and a keyed hash (HMAC-SHA256, hex) of its value.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawClientSecret {
    /// Secret id.
    pub id: String,
    /// HMAC-SHA256 of the secret under the data directory's key, hex.
    pub hash: String,
    /// Unix seconds.
    #[serde(default)]
    pub created_at: u64,
}

/// A registered public key: a JWK (ES256, RS256 or EdDSA) or a PEM public key.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawPublicKey {
    /// Key id (the `kid` its assertions carry).
    pub id: String,
    /// The key as a JWK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwk: Option<serde_json::Value>,
    /// Or as a PEM public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pem: Option<String>,
}

/// The agent's permission: the scope users of client applications receive for this agent.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawAgentPermission {
    /// Permission name (default: `<agent id> access`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Scope value (default `agent.access`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `auto` (every user of an authorized client) or `manual` (only those assigned below). Default `auto`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Manual mode: users granted the permission.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// Manual mode: groups whose members are granted it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Manual mode: organizational units whose members (including sub-units) are granted it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub organizations: Vec<String>,
}

/// `[[organizations]]`: an organizational unit.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawOrganization {
    /// Id.
    pub id: String,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The parent unit (none for a root).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

/// `[[groups]]`: a group of users.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    /// Id.
    pub id: String,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `[[users]]`: a directory user.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    /// Id (username).
    pub id: String,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// E-mail address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// The organizational unit the user belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// Groups the user is a member of.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// The sign-in password as an argon2id PHC string (`$argon2id$...`); set through the admin API. A user
    /// without one cannot sign in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<String>,
}

/// `[[credentials]]`: a stored API key.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredential {
    /// Credential id; also the associated data its sealed value is bound to.
    pub id: String,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The API key's own identifier at its provider (the console's "API key ID"; not secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
    /// A free-text description of the credential, kept apart from its identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Business type: `llm` or `external`; must match the kind of every node that uses it.
    pub kind: String,
    /// The hosts the value may be sent to (`api.openai.com`, or `*.openai.azure.com` for any subdomain): a node
    /// whose upstream (or, for an OAuth client secret or an exchange credential, token endpoint) is another host
    /// is invalid. Without it, a file credential may be used by the file's nodes only; the admin API requires it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// The value sealed by `idguard seal` (`idg1.…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sealed: Option<String>,
    /// Or: the name of an environment variable holding the value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// The value's keyed fingerprint (16 hex digits, HMAC-SHA256 under the data directory's fingerprint key),
    /// computed when the value was sealed and kept beside it, so that showing it never opens the value. The admin
    /// API writes it for the credentials it stores; a file credential shows one only when the file gives it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The value this one replaced, kept sealed for a grace period so an operator can switch back (written by the
    /// admin API's `PUT /admin/v1/credentials/{id}/value`; never injected by the proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<RawPreviousValue>,
}

/// A replaced credential value, kept for rollback until `until`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawPreviousValue {
    /// The replaced value, sealed for the same credential id.
    pub sealed: String,
    /// Its keyed fingerprint, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Unix seconds after which it can no longer be switched back to.
    pub until: u64,
}

/// `[[llm]]` and `[[external]]`: an upstream the agent reaches through the proxy.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    /// Route name: the node is served at `/llm/{id}/` or `/ext/{id}/`.
    pub id: String,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Upstream base URL, e.g. `https://api.openai.com/v1`; requests never leave its path.
    pub upstream: String,
    /// Injection style: `bearer`, `anthropic`, `azure`, `gemini`, `header` or `query`.
    pub style: String,
    /// For `style = "header"`: the header to set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// For `style = "header"` (optional): text put before the key, e.g. `"Token "`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// For `style = "query"`: the query parameter to set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// The credential id whose value is injected.
    pub credential: String,
    /// Send the verified agent id upstream in `x-idguard-agent` (default false).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_identity: Option<bool>,
    /// Allowed methods (default: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    /// External nodes only: the credential is an OAuth client secret; idguard obtains an access token with the
    /// client-credentials grant and injects that (style `bearer` unless set otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth: Option<RawOAuthClient>,
}

/// `oauth = { ... }` on an external node.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawOAuthClient {
    /// The provider's token endpoint (https, or http to loopback).
    pub token_url: String,
    /// The client id registered with the provider.
    pub client_id: String,
    /// Scopes to request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

/// `exchange = { ... }` on an enterprise service: an outside RFC 8693 endpoint to exchange at instead of idguard's
/// own identity service.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawExchange {
    /// The token endpoint (https, or http to loopback).
    pub token_url: String,
    /// idguard's client id there, if it authenticates (`client_secret_basic`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The credential holding that client's secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// `[[enterprise]]`: an internal service. Agents get tokens for its audience with the scopes their outbound
/// authorization grants.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    /// Service id (it will appear in `/svc/{id}/` paths).
    pub id: String,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Audience identifier: the `aud` of tokens for this service; immutable once saved through the API.
    pub audience: String,
    /// Base URL the proxy forwards `/svc/{id}/` requests to (https, or http to loopback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// The service's permissions; scope values are unique within the service.
    #[serde(default)]
    pub permissions: Vec<RawPermission>,
    /// Exchange at an outside RFC 8693 endpoint instead of idguard's own identity service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange: Option<RawExchange>,
}

/// A permission of an enterprise service.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawPermission {
    /// Display name (default: the scope).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Scope value.
    pub scope: String,
}

/// `[[outbound]]`: for an LLM or external node, the agent may call it holding every scope listed; for an
/// enterprise service, the agent is granted the listed scopes (each a permission of the service).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawEdge {
    /// Agent id.
    pub agent: String,
    /// Node id (LLM, external or enterprise service).
    pub node: String,
    /// LLM/external: scopes the agent's token must carry. Enterprise: scopes granted (default none).
    #[serde(default)]
    pub scopes: Vec<String>,
}
