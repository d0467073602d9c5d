//! The proxy's view of one snapshot: everything the hot path needs, computed once when the snapshot arrives.
//! Node lookup by route name, the agent→node edge with its required scopes, the upstream scheme and authority
//! already parsed, and the credential already turned into the exact header value (marked sensitive) or query
//! pair that is injected, beside every form of it that responses are searched for ([`Needles`]). Requests never
//! parse configuration.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use http::Method;
use http::header::{HeaderName, HeaderValue};
use http::uri::{Authority, Scheme};
use idguard_config::Snapshot;
use idguard_config::secret::Secret;
use idguard_config::snapshot::{Agent, InjectStyle, Node, NodeKind, Origin, Service, UpstreamUrl};

use crate::upstream::AddressPolicy;

use crate::echo::Needles;

/// The routing table of one snapshot.
pub struct Routes {
    /// The snapshot it was built from.
    pub snapshot: Arc<Snapshot>,
    llm: HashMap<Arc<str>, Arc<NodeRoute>>,
    external: HashMap<Arc<str>, Arc<NodeRoute>>,
    services: HashMap<Arc<str>, Arc<NodeRoute>>,
    agents: HashMap<Arc<str>, Arc<NodeRoute>>,
}

/// The four route families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteClass {
    /// `/llm/{node}/…`: an agent calls an LLM with a stored key.
    Llm,
    /// `/ext/{node}/…`: an agent calls a third-party API with a stored key or an OAuth token.
    External,
    /// `/svc/{service}/…`: an agent calls an enterprise service with an exchanged token.
    Service,
    /// `/agents/{agent}/…`: a client application calls an agent (the inbound gateway).
    Inbound,
}

/// Where the credential a route injects comes from.
pub enum CredentialSource {
    /// A stored key, prepared once; `None` when it cannot be had (→ 502).
    Static(Option<Injection>),
    /// An OAuth client-credentials token obtained with a stored client secret, cached until shortly before it
    /// expires.
    OAuth(OAuthSource),
    /// A token exchanged for the service (RFC 8693), cached per (agent, subject, service).
    Exchange(ExchangeSource),
    /// None: the inbound gateway sends the verified caller instead.
    Caller,
}

/// An external node's OAuth client.
pub struct OAuthSource {
    /// The provider's token endpoint.
    pub token_url: http::Uri,
    /// Client id.
    pub client_id: String,
    /// The client secret (`None`: the credential cannot be opened → 502).
    pub secret: Option<Secret>,
    /// Requested scopes, space-separated.
    pub scope: String,
    /// How the obtained token is injected (the node's style; usually bearer).
    pub style: InjectStyle,
    /// Which addresses the token endpoint may be reached at.
    pub policy: AddressPolicy,
}

/// An enterprise service's exchange.
pub struct ExchangeSource {
    /// The service's audience identifier.
    pub audience: String,
    /// An outside RFC 8693 endpoint, or `None` for idguard's own identity service.
    pub external: Option<ExternalExchange>,
}

/// An outside token-exchange endpoint and idguard's client there.
pub struct ExternalExchange {
    /// Token endpoint.
    pub token_url: http::Uri,
    /// `client_secret_basic` credentials, if it wants them.
    pub client: Option<(String, Secret)>,
    /// Which addresses the token endpoint may be reached at.
    pub policy: AddressPolicy,
}

/// One node, ready to serve.
pub struct NodeRoute {
    /// Route name (a configured id: safe as a metric label).
    pub id: Arc<str>,
    /// Which family of routes.
    pub class: RouteClass,
    /// Upstream scheme.
    pub scheme: Scheme,
    /// Upstream authority.
    pub authority: Authority,
    /// Upstream base path, no trailing slash.
    pub base_path: String,
    /// Which addresses the upstream may be reached at (API-managed objects: public ones only).
    pub policy: AddressPolicy,
    /// What is injected.
    pub credential: CredentialSource,
    /// Agents allowed to call this node, with the scopes each must hold (for a service: the scopes granted; for
    /// the inbound gateway: client applications and the scopes their inbound authorization grants).
    pub edges: HashMap<Arc<str>, EdgeRoute>,
    /// The inbound gateway: the agent's audience identifier, which client tokens must carry.
    pub audience: Option<String>,
    /// Allowed methods, with the `Allow` header a 405 for this node carries.
    pub methods: AllowedMethods,
    /// Send `x-idguard-agent` upstream.
    pub forward_identity: bool,
}

/// A node's methods and, built once per snapshot, the `Allow` header value listing them (RFC 9110 §15.5.6).
pub struct AllowedMethods {
    list: Vec<Method>,
    allow: HeaderValue,
}

/// An outbound authorization as the hot path checks it.
pub struct EdgeRoute {
    /// Scopes the token must carry.
    pub required_scopes: Vec<Arc<str>>,
}

/// The prepared credential of a node (or an obtained token), with the forms of it its upstream's responses are
/// searched for.
pub enum Injection {
    /// Set `name: value`, plus `extra` headers when the caller sent none (e.g. `anthropic-version`).
    Header {
        /// Header to set.
        name: HeaderName,
        /// Its value, marked sensitive.
        value: SecretHeaderValue,
        /// Defaults added only when absent.
        extra: Vec<(HeaderName, HeaderValue)>,
        /// What an echo of it looks like.
        echoes: Arc<Needles>,
    },
    /// Append `name=value` (value percent-encoded) to the query.
    Query {
        /// Parameter name.
        name: String,
        /// `name=encoded-value`, ready to append.
        pair: SecretString,
        /// What an echo of it looks like.
        echoes: Arc<Needles>,
    },
}

/// A header value holding a secret: marked sensitive (so hyper's HPACK never indexes it and loggers hide it),
/// and printed as `[redacted]`.
pub struct SecretHeaderValue(HeaderValue);

impl SecretHeaderValue {
    /// The value, for the injection step only.
    pub fn expose(&self) -> &HeaderValue {
        &self.0
    }
}

impl fmt::Debug for SecretHeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A query pair holding a secret; printed as `[redacted]`.
pub struct SecretString(zeroize::Zeroizing<String>);

impl SecretString {
    /// The value, for the injection step only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

// === impl Injection ===

impl Injection {
    /// Puts the credential on a request: the header (replacing any), `extra` headers only where absent, or the
    /// query pair appended. The one place a prepared secret is exposed.
    pub fn apply(&self, headers: &mut http::HeaderMap, query: &mut Option<String>) {
        match self {
            Injection::Header {
                name, value, extra, ..
            } => {
                headers.insert(name.clone(), value.expose().clone());
                for (name, value) in extra {
                    if !headers.contains_key(name) {
                        headers.insert(name.clone(), value.clone());
                    }
                }
            }
            Injection::Query { pair, .. } => {
                *query = Some(match query.take() {
                    Some(q) => format!("{q}&{}", pair.expose()),
                    None => pair.expose().to_owned(),
                });
            }
        }
    }

    /// The forms of the credential its upstream's responses are searched for.
    pub fn echoes(&self) -> &Arc<Needles> {
        match self {
            Injection::Header { echoes, .. } | Injection::Query { echoes, .. } => echoes,
        }
    }
}

// === impl Routes ===

impl Routes {
    /// Builds the table for `snapshot`. Never fails: a node whose credential cannot be prepared gets
    /// `inject: None` and answers 502 `credential_unavailable`, while every other node keeps working.
    pub fn build(snapshot: Arc<Snapshot>) -> Self {
        let mut llm = HashMap::new();
        let mut external = HashMap::new();
        for node in snapshot.nodes.values() {
            let Some(route) = node_route(&snapshot, node) else {
                continue;
            };
            match node.kind {
                NodeKind::Llm => llm.insert(node.id.clone(), Arc::new(route)),
                NodeKind::External => external.insert(node.id.clone(), Arc::new(route)),
            };
        }
        let services = snapshot
            .services
            .values()
            .filter_map(|svc| Some((svc.id.clone(), Arc::new(service_route(&snapshot, svc)?))))
            .collect();
        let agents = snapshot
            .agents
            .values()
            .filter_map(|agent| {
                Some((agent.id.clone(), Arc::new(inbound_route(&snapshot, agent)?)))
            })
            .collect();
        Self {
            snapshot,
            llm,
            external,
            services,
            agents,
        }
    }

    /// The route at `/{prefix}/{id}/`.
    pub fn route(&self, class: RouteClass, id: &str) -> Option<&Arc<NodeRoute>> {
        match class {
            RouteClass::Llm => self.llm.get(id),
            RouteClass::External => self.external.get(id),
            RouteClass::Service => self.services.get(id),
            RouteClass::Inbound => self.agents.get(id),
        }
    }
}

fn parse_upstream(url: &UpstreamUrl, id: &str) -> Option<(Scheme, Authority)> {
    match (
        url.scheme.parse::<Scheme>(),
        url.authority.parse::<Authority>(),
    ) {
        (Ok(s), Ok(a)) => Some((s, a)),
        _ => {
            tracing::error!(route = %id, "upstream URL does not parse; route disabled");
            None
        }
    }
}

/// The address policy for `host` of an object of `origin`: API-managed objects reach public addresses only,
/// unless the host is in `[admin] upstream_allow_hosts`.
fn policy(snapshot: &Snapshot, origin: Origin, host: &str) -> AddressPolicy {
    AddressPolicy::for_host(
        origin == Origin::Api,
        host,
        &snapshot.settings.upstream_allow_hosts,
    )
}

/// The opened value of credential `id`, if it opened.
fn opened(snapshot: &Snapshot, id: &str) -> Option<Secret> {
    snapshot
        .credentials
        .get(id)
        .and_then(|c| c.value.as_ref().ok())
        .cloned()
}

/// An edge table from `(caller, scopes)` pairs.
fn grants(by: Option<&HashMap<Arc<str>, Vec<Arc<str>>>>) -> HashMap<Arc<str>, EdgeRoute> {
    by.map(|m| {
        m.iter()
            .map(|(k, scopes)| {
                (
                    k.clone(),
                    EdgeRoute {
                        required_scopes: scopes.clone(),
                    },
                )
            })
            .collect()
    })
    .unwrap_or_default()
}

/// An LLM or external node's route: its credential prepared (or its OAuth client), its edges by agent.
fn node_route(snapshot: &Snapshot, node: &Node) -> Option<NodeRoute> {
    let (scheme, authority) = parse_upstream(&node.upstream, &node.id)?;
    let credential = match &node.oauth {
        Some(o) => match o.token_url.parse::<http::Uri>() {
            Ok(token_url) => CredentialSource::OAuth(OAuthSource {
                policy: policy(snapshot, node.origin, token_url.host().unwrap_or_default()),
                token_url,
                client_id: o.client_id.clone(),
                secret: opened(snapshot, &node.credential),
                scope: o.scope.clone(),
                style: node.style.clone(),
            }),
            Err(_) => CredentialSource::Static(None),
        },
        None => CredentialSource::Static(
            opened(snapshot, &node.credential).and_then(|s| prepare(&node.style, s.expose())),
        ),
    };
    let edges = snapshot
        .edges
        .get(&node.id)
        .map(|by_agent| {
            by_agent
                .iter()
                .map(|(agent, e)| {
                    (
                        agent.clone(),
                        EdgeRoute {
                            required_scopes: e.required_scopes.clone(),
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Some(NodeRoute {
        id: node.id.clone(),
        class: match node.kind {
            NodeKind::Llm => RouteClass::Llm,
            NodeKind::External => RouteClass::External,
        },
        policy: policy(snapshot, node.origin, authority.host()),
        scheme,
        authority,
        base_path: node.upstream.base_path.clone(),
        credential,
        edges,
        audience: None,
        methods: AllowedMethods::new(
            node.methods
                .iter()
                .filter_map(|m| m.parse::<Method>().ok())
                .collect(),
        ),
        forward_identity: node.forward_identity,
    })
}

/// An enterprise service's route: a token exchanged for its audience, in-process or at an outside endpoint.
fn service_route(snapshot: &Snapshot, svc: &Service) -> Option<NodeRoute> {
    let upstream = svc.upstream.as_ref()?;
    let (scheme, authority) = parse_upstream(upstream, &svc.id)?;
    let external = svc.exchange.as_ref().map(|x| {
        let token_url: http::Uri = x.token_url.parse().unwrap_or_default();
        ExternalExchange {
            policy: policy(snapshot, svc.origin, token_url.host().unwrap_or_default()),
            token_url,
            client: x
                .client_id
                .clone()
                .zip(x.credential.as_deref().and_then(|id| opened(snapshot, id))),
        }
    });
    Some(NodeRoute {
        id: svc.id.clone(),
        class: RouteClass::Service,
        policy: policy(snapshot, svc.origin, authority.host()),
        scheme,
        authority,
        base_path: upstream.base_path.clone(),
        credential: CredentialSource::Exchange(ExchangeSource {
            audience: svc.audience.clone(),
            external,
        }),
        edges: grants(snapshot.service_grants.get(&svc.id)),
        audience: None,
        methods: AllowedMethods::new(default_methods()),
        forward_identity: false,
    })
}

/// The inbound gateway's route to an agent's own endpoint: client tokens for the agent's audience.
fn inbound_route(snapshot: &Snapshot, agent: &Agent) -> Option<NodeRoute> {
    let endpoint = agent.endpoint.as_ref()?;
    let (scheme, authority) = parse_upstream(endpoint, &agent.id)?;
    Some(NodeRoute {
        id: agent.id.clone(),
        class: RouteClass::Inbound,
        policy: policy(snapshot, agent.origin, authority.host()),
        scheme,
        authority,
        base_path: endpoint.base_path.clone(),
        credential: CredentialSource::Caller,
        edges: grants(snapshot.inbound.get(&agent.id)),
        audience: Some(agent.audience.clone()),
        methods: AllowedMethods::new(default_methods()),
        forward_identity: true,
    })
}

// === impl AllowedMethods ===

impl AllowedMethods {
    /// `list`, with its `Allow` value.
    pub fn new(list: Vec<Method>) -> Self {
        let joined = list
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ");
        // Method tokens are visible ASCII, so this cannot fail; an empty value is the safe fallback.
        let allow = HeaderValue::from_str(&joined).unwrap_or_else(|_| HeaderValue::from_static(""));
        Self { list, allow }
    }

    /// Whether `method` is allowed.
    pub fn contains(&self, method: &Method) -> bool {
        self.list.contains(method)
    }

    /// The `Allow` header value.
    pub fn allow(&self) -> &HeaderValue {
        &self.allow
    }
}

fn default_methods() -> Vec<Method> {
    [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ]
    .to_vec()
}

/// Prepares the injection of `key` in `style`, and the forms of it responses are searched for; `None` when the key
/// cannot be carried that way.
pub fn prepare(style: &InjectStyle, key: &str) -> Option<Injection> {
    let encoded = match style {
        InjectStyle::Query { .. } => Some(zeroize::Zeroizing::new(encode_query(key))),
        _ => None,
    };
    let echoes = match Needles::new(key.as_bytes(), encoded.as_ref().map(|e| e.as_bytes())) {
        Ok(needles) => Arc::new(needles),
        Err(_) => {
            // Never forwarded unguarded: the node answers 502 instead.
            tracing::error!(
                reason = "credential_unusable",
                "the echo scanner for a credential could not be built"
            );
            return None;
        }
    };
    let header = |name: &'static str, value: String| -> Option<Injection> {
        let mut v = HeaderValue::from_str(&value).ok()?;
        v.set_sensitive(true);
        Some(Injection::Header {
            name: HeaderName::from_static(name),
            value: SecretHeaderValue(v),
            extra: vec![],
            echoes: echoes.clone(),
        })
    };
    let prepared = match style {
        InjectStyle::Bearer => header("authorization", format!("Bearer {key}")),
        InjectStyle::Azure => header("api-key", key.to_owned()),
        InjectStyle::Gemini => header("x-goog-api-key", key.to_owned()),
        InjectStyle::Anthropic => header("x-api-key", key.to_owned()).map(|inj| match inj {
            Injection::Header {
                name,
                value,
                echoes,
                ..
            } => Injection::Header {
                name,
                value,
                extra: vec![(
                    HeaderName::from_static("anthropic-version"),
                    HeaderValue::from_static("2023-06-01"),
                )],
                echoes,
            },
            other => other,
        }),
        InjectStyle::Header { name, prefix } => {
            let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
            let mut v = HeaderValue::from_str(&format!("{prefix}{key}")).ok()?;
            v.set_sensitive(true);
            Some(Injection::Header {
                name,
                value: SecretHeaderValue(v),
                extra: vec![],
                echoes: echoes.clone(),
            })
        }
        InjectStyle::Query { name } => Some(Injection::Query {
            name: name.clone(),
            pair: SecretString(zeroize::Zeroizing::new(format!(
                "{name}={}",
                encoded.as_deref().map_or("", |e| e.as_str())
            ))),
            echoes: echoes.clone(),
        }),
    };
    if prepared.is_none() {
        // The value has bytes a header cannot carry (a newline, say): the node answers 502 until it is fixed.
        tracing::error!(
            reason = "credential_unusable",
            "a credential value cannot be sent in its injection style"
        );
    }
    prepared
}

fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepared_credentials_are_sensitive_and_never_print() {
        let key = "sk-CANARY-0123456789";
        for style in [
            InjectStyle::Bearer,
            InjectStyle::Anthropic,
            InjectStyle::Azure,
            InjectStyle::Gemini,
            InjectStyle::Header {
                name: "x-key".into(),
                prefix: "Token ".into(),
            },
        ] {
            let Some(Injection::Header { value, .. }) = prepare(&style, key) else {
                panic!("{style:?} should prepare a header");
            };
            assert!(value.expose().is_sensitive(), "{style:?}");
            assert_eq!(format!("{value:?}"), "[redacted]");
        }
        let Some(Injection::Query { pair, .. }) =
            prepare(&InjectStyle::Query { name: "k".into() }, "a b&c")
        else {
            panic!("query style");
        };
        assert_eq!(pair.expose(), "k=a%20b%26c");
        assert_eq!(format!("{pair:?}"), "[redacted]");
        // A value a header cannot carry makes the node unavailable rather than panicking.
        assert!(prepare(&InjectStyle::Bearer, "bad\nvalue").is_none());
    }
}
