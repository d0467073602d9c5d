//! The validated topology at one generation, plus the settings that came with it. Immutable: a reload builds a
//! new one and the planes swap it in whole, so a request sees exactly one generation from start to end.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{SealError, ValidationError};
use crate::secret::Secret;

/// One validated routing file.
#[derive(Debug)]
pub struct Snapshot {
    /// Increases by one with every snapshot published in this process; `idguard_config_generation` reports it.
    pub generation: u64,
    /// The store's topology version this snapshot was built from (0 without a store). Never goes back.
    pub store_version: u64,
    /// Static and semi-static settings.
    pub settings: Settings,
    /// Trusted token issuers, in file order.
    pub issuers: Vec<Arc<Issuer>>,
    /// Agents by id.
    pub agents: HashMap<Arc<str>, Agent>,
    /// Credentials by id, already opened (or the reason they could not be).
    pub credentials: HashMap<Arc<str>, Credential>,
    /// LLM and external nodes by id (ids are unique across both kinds).
    pub nodes: HashMap<Arc<str>, Node>,
    /// Outbound edges to LLM and external nodes, by node id then agent id.
    pub edges: HashMap<Arc<str>, HashMap<Arc<str>, Edge>>,
    /// Users, groups and organizational units.
    pub directory: Directory,
    /// Client applications by id.
    pub clients: HashMap<Arc<str>, Client>,
    /// Inbound authorizations: granted scopes by agent id then client id.
    pub inbound: ScopeGrants,
    /// Enterprise services by id.
    pub services: HashMap<Arc<str>, Service>,
    /// Scopes granted on agent → service edges, by service id then agent id.
    pub service_grants: ServiceGrants,
    /// The built-in identity service, when `[identity]` is set.
    pub identity: Option<Arc<IdentitySettings>>,
}

/// `[identity]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentitySettings {
    /// The issuer identifier (no trailing slash).
    pub issuer: String,
    /// Whether `issuer` was derived from the public listener's address (`issuer` omitted or `"auto"`) rather than
    /// written in the file.
    pub issuer_derived: bool,
    /// `aud` of agents' tokens for the proxy's outbound routes.
    pub audience: String,
    /// Access-token lifetime.
    pub access_token_ttl: Duration,
    /// Longest exchanged-token lifetime.
    pub exchange_max_ttl: Duration,
    /// Signing-key rotation period.
    pub key_rotation: Duration,
    /// Accept assertions whose `aud` is the token endpoint URL (or the URL they are sent to), not only the issuer.
    pub accept_token_endpoint_audience: bool,
    /// Longest `private_key_jwt` assertion lifetime (now to `exp`).
    pub max_assertion_lifetime: Duration,
    /// Failed client authentications per client per minute before 429.
    pub max_failed_auth_per_minute: u32,
    /// Deepest `act` nesting accepted.
    pub max_act_depth: usize,
}

impl IdentitySettings {
    /// The token endpoint URL.
    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth2/token", self.issuer)
    }
}

/// Scopes granted on edges: by one end's id, then the other's (service → agent, or agent → client).
pub type ScopeGrants = HashMap<Arc<str>, HashMap<Arc<str>, Vec<Arc<str>>>>;

/// Scopes granted on agent → service edges, by service id then agent id.
pub type ServiceGrants = ScopeGrants;

/// An enterprise service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Service id.
    pub id: Arc<str>,
    /// Display name.
    pub name: String,
    /// Audience identifier.
    pub audience: String,
    /// Where `/svc/{id}/` forwards, when set.
    pub upstream: Option<UpstreamUrl>,
    /// Permissions as (name, scope).
    pub permissions: Vec<(String, Arc<str>)>,
    /// An outside RFC 8693 endpoint to exchange at (`None`: idguard's own identity service).
    pub exchange: Option<ExchangeEndpoint>,
    /// Who wrote the service.
    pub origin: Origin,
}

/// An outside token-exchange endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeEndpoint {
    /// Token endpoint URL.
    pub token_url: String,
    /// idguard's client id there.
    pub client_id: Option<String>,
    /// The credential holding its secret.
    pub credential: Option<Arc<str>>,
}

/// OAuth client credentials of an external node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// Token endpoint URL.
    pub token_url: String,
    /// Client id.
    pub client_id: String,
    /// Scopes requested, space-separated (empty: none).
    pub scope: String,
}

/// Listener addresses, limits and upstream settings. Listener addresses and TLS files are read at start only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Public (data-plane) listener address.
    pub public_addr: SocketAddr,
    /// Admin listener address.
    pub admin_addr: SocketAddr,
    /// TLS files for the public listener.
    pub tls: Option<TlsFiles>,
    /// TLS for the admin listener. Turning it on or off needs a restart; its files are read again at every reload.
    pub admin_tls: Option<AdminTls>,
    /// Request limits.
    pub limits: Limits,
    /// Upstream connection settings.
    pub upstream: UpstreamSettings,
    /// How often the file is polled for changes (`None`: not watched).
    pub watch_interval: Option<Duration>,
    /// Most verified tokens cached (0: no cache). Read at start.
    pub token_cache_entries: usize,
    /// M2M application licenses (each agent uses one).
    pub m2m_licenses: u64,
    /// Most stored credentials.
    pub max_credentials: u64,
    /// Hosts the admin API may use as upstreams despite its SSRF rules, and that the proxy reaches under the
    /// routing file's address rule even for API-managed objects.
    pub upstream_allow_hosts: Vec<String>,
    /// Redis for several replicas (`None`: the embedded store).
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel idguard uses.
    pub redis_prefix: String,
    /// How long Redis may be unreachable before readiness reports it.
    pub redis_staleness: Duration,
    /// How long the last topology is served while Redis is unreachable.
    pub redis_max_staleness: Duration,
    /// How many records the Redis audit stream keeps (approximately). Read at start.
    pub audit_stream_max_len: u64,
    /// How idguard connects to Redis (read at start).
    pub redis_connection: RedisConnection,
}

/// How idguard connects to Redis: topology, TLS files and timeouts from `[store]`. The ACL username and password
/// are never here: they come from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConnection {
    /// `redis_url` lists seed nodes of a Redis Cluster.
    pub cluster: bool,
    /// An extra CA a `rediss://` server may chain to, besides the platform's roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain and its key, for servers that ask for one.
    pub client_cert: Option<TlsFiles>,
    /// How long connecting (TCP, TLS, AUTH) may take.
    pub connect_timeout: Duration,
    /// How long one call may wait for its answer.
    pub response_timeout: Duration,
}

/// PEM files for the public listener's TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// Private key.
    pub key_file: PathBuf,
}

/// The admin listener's TLS: its own certificate, and the CA operators' client certificates chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminTls {
    /// Certificate chain and key.
    pub files: TlsFiles,
    /// CA certificates (PEM) a client certificate must chain to; `None`: client certificates are not asked for.
    pub client_ca_file: Option<PathBuf>,
    /// Whether a connection without a client certificate is refused (only with `client_ca_file`).
    pub client_auth: ClientCertAuth,
}

/// Whether the admin listener refuses a TLS connection that presents no client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientCertAuth {
    /// The handshake fails without a certificate that chains to the client CA.
    Required,
    /// A connection may present none; one it presents must still chain to the client CA.
    Optional,
}

/// Request limits enforced before any upstream work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Total request header bytes (names + values).
    pub max_header_bytes: usize,
    /// Number of request headers.
    pub max_headers: usize,
    /// Request-target length.
    pub max_uri_bytes: usize,
    /// Request body bytes.
    pub max_body_bytes: u64,
    /// Time allowed to receive request headers.
    pub header_read_timeout: Duration,
    /// Time from accepting a connection (TLS handshake included) to the bytes that choose HTTP/1 or HTTP/2.
    pub first_bytes_timeout: Duration,
    /// Time an HTTP/2 connection may stay without an open stream.
    pub http2_idle_timeout: Duration,
    /// Interval of HTTP/2 keep-alive pings.
    pub http2_keepalive_interval: Duration,
    /// Time a keep-alive ping may go unanswered.
    pub http2_keepalive_timeout: Duration,
    /// Time a request body may send nothing.
    pub body_idle_timeout: Duration,
    /// Open connections on the public listener.
    pub max_connections: usize,
    /// Open connections from one client address (IPv6: one /64); 0 means no per-address cap.
    pub max_connections_per_ip: usize,
}

/// How idguard talks to upstreams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSettings {
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Time to the upstream's response headers.
    pub response_header_timeout: Duration,
    /// Idle pooled connection lifetime.
    pub pool_idle_timeout: Duration,
    /// Extra CA certificates (PEM) for upstream TLS.
    pub extra_ca_file: Option<PathBuf>,
}

/// A trusted token issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issuer {
    /// The exact `iss`.
    pub issuer: String,
    /// The single `aud` tokens for this proxy must carry.
    pub audience: String,
    /// Where its public keys come from.
    pub keys: KeySource,
    /// Accepted `typ` values, lower-cased, without any `application/` prefix.
    pub accepted_typ: Vec<String>,
    /// Clock leeway for `exp`/`nbf`, seconds (≤ 60).
    pub leeway_seconds: u64,
    /// Periodic refetch interval for a JWKS URL.
    pub jwks_refresh: Duration,
}

/// Where an issuer's public keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A JWKS document on disk (re-read on reload and, rate-limited, on an unknown `kid`).
    File(PathBuf),
    /// A JWKS document at an https URL.
    Url(String),
    /// idguard's own identity service: its keys are handed to the proxy in-process.
    Local,
}

/// An agent identity.
#[derive(Debug, Clone, PartialEq)]
pub struct Agent {
    /// Agent ID (`client_id`/`sub` of its tokens).
    pub id: Arc<str>,
    /// Display name.
    pub name: String,
    /// Audience identifier (`aud` of client tokens for this agent).
    pub audience: String,
    /// Whether its tokens are accepted.
    pub enabled: bool,
    /// The agent's permission.
    pub permission: AgentPermission,
    /// `client_secret` or `private_key_jwt`.
    pub auth: ClientAuth,
    /// Client secrets: (id, keyed hash as bytes).
    pub secrets: Vec<(String, Vec<u8>)>,
    /// Registered public keys: (id, algorithm name, JWK).
    pub keys: Vec<PublicKey>,
    /// Where the inbound gateway forwards client calls.
    pub endpoint: Option<UpstreamUrl>,
    /// Lifetime of the tokens it obtains for itself; `None`: `[identity] access_token_ttl_seconds`.
    pub token_ttl: Option<Duration>,
    /// Who wrote the agent.
    pub origin: Origin,
}

/// A client application.
#[derive(Debug, Clone, PartialEq)]
pub struct Client {
    /// `client_id`.
    pub id: Arc<str>,
    /// Display name.
    pub name: String,
    /// Exact redirect URIs.
    pub redirect_uris: Vec<String>,
    /// How it authenticates.
    pub auth: ClientAuth,
    /// Client secrets: (id, keyed hash).
    pub secrets: Vec<(String, Vec<u8>)>,
    /// Registered public keys.
    pub keys: Vec<PublicKey>,
    /// Authorized users, groups and organizational units.
    pub users: Vec<Arc<str>>,
    /// Authorized groups.
    pub groups: Vec<Arc<str>>,
    /// Authorized organizational units.
    pub organizations: Vec<Arc<str>>,
    /// Whether its tokens are accepted.
    pub enabled: bool,
}

impl Client {
    /// Whether `user` may use this client application: listed directly, through a group, or through their
    /// organizational unit or any unit above it.
    pub fn authorizes(&self, user: &str, directory: &Directory) -> bool {
        let Some(u) = directory.users.get(user) else {
            return false;
        };
        self.users.iter().any(|x| &**x == user)
            || u.groups.iter().any(|g| self.groups.contains(g))
            || u.organization.as_ref().is_some_and(|org| {
                directory
                    .ancestry(org)
                    .iter()
                    .any(|o| self.organizations.contains(o))
            })
    }
}

/// How a client authenticates to the identity service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `client_secret_basic` / `client_secret_post`.
    ClientSecret,
    /// `private_key_jwt` (RFC 7523).
    PrivateKeyJwt,
}

/// A registered public key, normalized to a JWK whose algorithm the key fixes.
#[derive(Debug, Clone, PartialEq)]
pub struct PublicKey {
    /// Key id.
    pub id: String,
    /// `ES256`, `RS256` or `EdDSA`.
    pub alg: &'static str,
    /// The key as a JWK (with `kid` and `alg` set).
    pub jwk: jsonwebtoken::jwk::Jwk,
}

/// Who receives an agent's permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPermission {
    /// Permission name.
    pub name: String,
    /// Scope value (default `agent.access`).
    pub scope: Arc<str>,
    /// Auto: every user of an authorized client. Manual: only those assigned.
    pub manual: bool,
    /// Manual mode: users.
    pub users: Vec<Arc<str>>,
    /// Manual mode: groups.
    pub groups: Vec<Arc<str>>,
    /// Manual mode: organizational units (members of sub-units included).
    pub organizations: Vec<Arc<str>>,
}

impl AgentPermission {
    /// Whether `user` holds this permission. In auto mode every directory user does (the client application's
    /// own authorization is checked separately); in manual mode the user must be assigned directly, through a
    /// group, or through an organizational unit or any unit above theirs.
    pub fn granted_to(&self, user: &str, directory: &Directory) -> bool {
        let Some(u) = directory.users.get(user) else {
            return false;
        };
        if !self.manual {
            return true;
        }
        self.users.iter().any(|x| x.as_ref() == user)
            || u.groups.iter().any(|g| self.groups.contains(g))
            || u.organization.as_ref().is_some_and(|org| {
                directory
                    .ancestry(org)
                    .iter()
                    .any(|o| self.organizations.iter().any(|x| x == o))
            })
    }
}

/// Users, groups and the organization tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    /// Users by id.
    pub users: HashMap<Arc<str>, User>,
    /// Groups by id (value: display name).
    pub groups: HashMap<Arc<str>, String>,
    /// Organizational units by id (value: display name and parent).
    pub organizations: HashMap<Arc<str>, (String, Option<Arc<str>>)>,
}

/// A directory user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: Arc<str>,
    /// Display name.
    pub name: String,
    /// E-mail, if known.
    pub email: Option<String>,
    /// Their organizational unit.
    pub organization: Option<Arc<str>>,
    /// Their groups.
    pub groups: Vec<Arc<str>>,
    /// argon2id PHC string; `None`: cannot sign in.
    pub password_hash: Option<String>,
}

impl Directory {
    /// `org` and every unit above it, nearest first. Validation guarantees the tree has no cycle; the walk is
    /// bounded by the number of units all the same.
    pub fn ancestry(&self, org: &Arc<str>) -> Vec<Arc<str>> {
        let mut out = vec![org.clone()];
        let mut at = org.clone();
        while let Some((_, Some(parent))) = self.organizations.get(&at) {
            if out.len() > self.organizations.len() {
                break;
            }
            out.push(parent.clone());
            at = parent.clone();
        }
        out
    }
}

/// The node kinds a credential's business type and a route prefix come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeKind {
    /// A large language model API (`/llm/`).
    Llm,
    /// A third-party API (`/ext/`).
    External,
}

impl NodeKind {
    /// The kind's name as written in the file and used in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Llm => "llm",
            NodeKind::External => "external",
        }
    }
}

/// A stored credential, opened at snapshot build.
#[derive(Debug, Clone)]
pub struct Credential {
    /// Credential id.
    pub id: Arc<str>,
    /// Display name.
    pub name: String,
    /// Business type.
    pub kind: NodeKind,
    /// The hosts the value may be sent to, lower-cased (`*.example.com`: any subdomain); `None`: not bound, so
    /// only the routing file's nodes may use it.
    pub hosts: Option<Vec<String>>,
    /// The value, or why it is unavailable (requests that need it get 502 `credential_unavailable`).
    pub value: Result<Secret, CredentialUnavailable>,
    /// The routing-file line of its `sealed` (or `env`) value, for messages; `None` for a stored credential or
    /// a file written in another form than `[[credentials]]` tables.
    pub line: Option<usize>,
}

/// Why a credential value could not be had. Carries no part of the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialUnavailable {
    /// The sealed value would not open.
    #[error("sealed value: {0}")]
    Seal(#[from] SealError),
    /// The named environment variable is unset or empty.
    #[error("environment variable {0} is not set")]
    EnvMissing(String),
}

/// How a credential is put on the upstream request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InjectStyle {
    /// `Authorization: Bearer <key>` (OpenAI-compatible, DashScope, most APIs).
    Bearer,
    /// `x-api-key: <key>`, plus `anthropic-version` when the caller sent none.
    Anthropic,
    /// `api-key: <key>` (Azure OpenAI).
    Azure,
    /// `x-goog-api-key: <key>` (Gemini).
    Gemini,
    /// Any header, with an optional prefix before the key.
    Header {
        /// Header name, lower-cased.
        name: String,
        /// Text before the key.
        prefix: String,
    },
    /// A query parameter.
    Query {
        /// Parameter name.
        name: String,
    },
}

/// Who wrote an object: the operator, in the routing file, or someone with the admin token, through the API.
/// The proxy holds the addresses it connects to for API-managed objects to the admin API's SSRF rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Origin {
    /// Declared in the routing file.
    #[default]
    File,
    /// Stored through the admin API.
    Api,
}

/// The parts of an upstream base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]`.
    pub authority: String,
    /// Base path without a trailing slash (`""` for the root).
    pub base_path: String,
}

/// An LLM or external node.
#[derive(Debug, Clone)]
pub struct Node {
    /// Route name.
    pub id: Arc<str>,
    /// Display name.
    pub name: String,
    /// LLM or external.
    pub kind: NodeKind,
    /// Where requests go.
    pub upstream: UpstreamUrl,
    /// How the credential is injected.
    pub style: InjectStyle,
    /// The credential injected.
    pub credential: Arc<str>,
    /// Whether `x-idguard-agent` is sent upstream.
    pub forward_identity: bool,
    /// Allowed methods, upper-case.
    pub methods: Vec<String>,
    /// External nodes: the credential is a client secret exchanged for a token here.
    pub oauth: Option<OAuthClient>,
    /// Who wrote the node.
    pub origin: Origin,
}

/// An outbound authorization: `agent` may call `node` holding `required_scopes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// Agent id.
    pub agent: Arc<str>,
    /// Node id.
    pub node: Arc<str>,
    /// Scopes the token must carry.
    pub required_scopes: Vec<Arc<str>>,
}

// === impl Snapshot ===

impl Snapshot {
    /// Credentials that could not be opened, as errors located at their entry, for `idguard check`.
    pub fn credential_problems(&self) -> Vec<ValidationError> {
        let mut out: Vec<ValidationError> = self
            .credentials
            .values()
            .filter_map(|c| match &c.value {
                Ok(_) => None,
                Err(why) => Some(ValidationError {
                    path: format!("credentials[id={}]", c.id),
                    line: c.line,
                    message: match why {
                        // A value sealed under another master key (an example file, another deployment): say
                        // how to replace it, since nothing else can open it.
                        CredentialUnavailable::Seal(SealError::Decrypt | SealError::UnknownTerm(_)) => {
                            format!(
                                "cannot be opened: {why}; seal the key again under your master key with \
                                 `printf %s \"$KEY\" | idguard seal --id {}` and replace the value",
                                c.id
                            )
                        }
                        _ => format!("cannot be opened: {why}"),
                    },
                }),
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }

    /// Whether client `id` (an agent or a client application) is enabled and still holds `credential`, the
    /// `idg_cred` claim of tokens idguard issues: `secret:<id>` or `key:<id>`. Removing a secret or key, or
    /// disabling the client, ends the tokens it obtained.
    pub fn credential_current(&self, id: &str, credential: &str) -> bool {
        let (enabled, secrets, keys) = if let Some(a) = self.agents.get(id) {
            (a.enabled, &a.secrets, &a.keys)
        } else if let Some(c) = self.clients.get(id) {
            (c.enabled, &c.secrets, &c.keys)
        } else {
            return false;
        };
        enabled
            && match credential.split_once(':') {
                Some(("secret", sid)) => secrets.iter().any(|(s, _)| s == sid),
                Some(("key", kid)) => keys.iter().any(|k| k.id == kid),
                _ => false,
            }
    }

    /// Whether every credential that could not be opened failed only because no master key was given (true when
    /// all opened). `idguard check` without a key reports that once instead of per credential.
    pub fn unopened_only_for_lack_of_key(&self) -> bool {
        self.credentials.values().all(|c| {
            matches!(
                c.value,
                Ok(_) | Err(CredentialUnavailable::Seal(SealError::NoMasterKey))
            )
        })
    }

    /// Whether any credential is sealed but no master key was given (readiness reports `sealed`).
    pub fn is_sealed(&self) -> bool {
        self.credentials.values().any(|c| {
            matches!(
                c.value,
                Err(CredentialUnavailable::Seal(SealError::NoMasterKey))
            )
        })
    }
}
