//! Raw → [`Snapshot`]: every check in one pass, every error collected with the path of its field, so an operator
//! fixes a file in one round. Nothing here does I/O except reading the JWKS files the config names and the
//! environment variables credentials name (both through [`BuildContext`]).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::defaults;
use crate::error::{SealError, ValidationError, ValidationErrors};
use crate::keys::decode_hex32;
use crate::raw::{
    RawAgent, RawClientSecret, RawConfig, RawCredential, RawIdentity, RawIssuer, RawNode,
    RawPublicKey, RawService,
};
use crate::seal::{self, MasterKeys};
use crate::secret::Secret;
use crate::snapshot::{
    Agent, AgentPermission, Client, ClientAuth, Credential, CredentialUnavailable, Directory, Edge,
    ExchangeEndpoint, IdentitySettings, InjectStyle, Issuer, KeySource, Limits, Node, NodeKind,
    OAuthClient, PublicKey, ScopeGrants, Service, ServiceGrants, Settings, Snapshot, TlsFiles,
    UpstreamSettings, UpstreamUrl, User,
};

pub use crate::defaults::METHODS as DEFAULT_METHODS;
pub use crate::keys::public_key;

/// What building a snapshot may consult besides the raw file.
pub struct BuildContext<'a> {
    /// Directory that relative paths in the file are relative to.
    pub base_dir: PathBuf,
    /// Master keys for sealed credential values (`None`: sealed values stay unavailable).
    pub master_keys: Option<&'a MasterKeys>,
    /// Environment lookup for `env = "..."` credentials (a closure so tests need not touch the process env).
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The generation the snapshot will carry.
    pub generation: u64,
}

const MAX_LEEWAY: u64 = 60;

struct Errors(Vec<ValidationError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ValidationError {
            path: path.into(),
            line: None,
            message: message.into(),
        });
    }
}

/// Validates `raw` and builds the snapshot.
///
/// # Errors
/// Every problem found, each with its field path; never an empty list.
pub fn validate(raw: RawConfig, ctx: &BuildContext<'_>) -> Result<Snapshot, ValidationErrors> {
    let mut errors = Errors(Vec::new());
    let settings = settings(&raw, ctx, &mut errors);

    let mut issuers = Vec::new();
    let mut seen_issuers = HashSet::new();
    for (i, raw_issuer) in raw.issuers.iter().enumerate() {
        let path = format!("issuers[{i}]");
        if !seen_issuers.insert(raw_issuer.issuer.clone()) {
            errors.push(
                format!("{path}.issuer"),
                format!("issuer {:?} is declared twice", raw_issuer.issuer),
            );
        }
        if let Some(issuer) = issuer(raw_issuer, &path, ctx, &mut errors) {
            issuers.push(Arc::new(issuer));
        }
    }

    let identity = raw.identity.as_ref().and_then(|r| identity(r, &mut errors));
    if let Some(id) = &identity {
        if seen_issuers.contains(&id.issuer) {
            errors.push(
                "identity.issuer",
                "is also declared in [[issuers]]: idguard trusts its own issuer without one",
            );
        }
        // The proxy trusts its own identity service with the keys handed over in-process.
        issuers.push(Arc::new(Issuer {
            issuer: id.issuer.clone(),
            audience: id.audience.clone(),
            keys: KeySource::Local,
            accepted_typ: vec![defaults::ACCESS_TOKEN_TYP.into()],
            leeway_seconds: defaults::ISSUER_LEEWAY_SECONDS,
            jwks_refresh: Duration::from_secs(defaults::JWKS_REFRESH_SECONDS),
        }));
    }
    let directory = directory(&raw, &mut errors);
    let mut agents = HashMap::new();
    let mut audiences = HashSet::new();
    for (i, a) in raw.agents.iter().enumerate() {
        let path = format!("agents[{i}]");
        check_id(&a.id, &format!("{path}.id"), IdKind::Principal, &mut errors);
        let id: Arc<str> = Arc::from(a.id.as_str());
        let audience = a
            .audience
            .clone()
            .unwrap_or_else(|| defaults::agent_audience(&a.id));
        // A derived audience is as good as the id, which is checked above; only an explicit one is checked here.
        if a.audience.is_some()
            && (audience.is_empty()
                || audience.len() > 512
                || !audience.bytes().all(|b| b.is_ascii_graphic()))
        {
            errors.push(
                format!("{path}.audience"),
                "must be 1-512 printable ASCII characters without spaces",
            );
        } else if !audiences.insert(audience.clone()) {
            errors.push(
                format!("{path}.audience"),
                format!("audience {audience:?} is used by another agent"),
            );
        }
        let permission = agent_permission(a, &path, &directory, &mut errors);
        let (auth, secrets, keys) = agent_credentials(a, &path, &mut errors);
        let agent = Agent {
            id: id.clone(),
            name: defaults::display_name(a.name.as_deref(), &a.id),
            audience,
            enabled: a.enabled.unwrap_or(defaults::ENABLED),
            permission,
            auth,
            secrets,
            keys,
            endpoint: a
                .endpoint
                .as_ref()
                .and_then(|u| upstream_url(u, &format!("{path}.endpoint"), &mut errors)),
        };
        if agents.insert(id, agent).is_some() {
            errors.push(
                format!("{path}.id"),
                format!("agent id {:?} is declared twice", a.id),
            );
        }
    }

    let mut credentials = HashMap::new();
    for (i, c) in raw.credentials.iter().enumerate() {
        let path = format!("credentials[{i}]");
        if let Some(cred) = credential(c, &path, ctx, &mut errors)
            && credentials.insert(cred.id.clone(), cred).is_some()
        {
            errors.push(
                format!("{path}.id"),
                format!("credential id {:?} is declared twice", c.id),
            );
        }
    }

    let mut nodes = HashMap::new();
    for (kind, list, section) in [
        (NodeKind::Llm, &raw.llm, "llm"),
        (NodeKind::External, &raw.external, "external"),
    ] {
        for (i, n) in list.iter().enumerate() {
            let path = format!("{section}[{i}]");
            if let Some(node) = node(n, kind, &path, &credentials, &mut errors)
                && nodes.insert(node.id.clone(), node).is_some()
            {
                errors.push(
                    format!("{path}.id"),
                    format!(
                        "node id {:?} is already used by another llm or external node",
                        n.id
                    ),
                );
            }
        }
    }

    let mut services: HashMap<Arc<str>, Service> = HashMap::new();
    for (i, svc) in raw.enterprise.iter().enumerate() {
        let path = format!("enterprise[{i}]");
        if let Some(service) = service(svc, &path, &mut audiences, &credentials, &mut errors) {
            if nodes.contains_key(service.id.as_ref()) || services.contains_key(service.id.as_ref())
            {
                errors.push(
                    format!("{path}.id"),
                    format!("id {:?} is already used by another node or service", svc.id),
                );
            } else {
                services.insert(service.id.clone(), service);
            }
        }
    }
    let mut service_grants = ServiceGrants::new();
    let mut edges: HashMap<Arc<str>, HashMap<Arc<str>, Edge>> = HashMap::new();
    for (i, e) in raw.outbound.iter().enumerate() {
        let path = format!("outbound[{i}]");
        let Some((agent, _)) = agents.get_key_value(e.agent.as_str()) else {
            errors.push(
                format!("{path}.agent"),
                format!("no agent has id {:?}", e.agent),
            );
            continue;
        };
        if let Some(service) = services.get(e.node.as_str()) {
            let mut granted: Vec<Arc<str>> = Vec::new();
            for (j, scope) in e.scopes.iter().enumerate() {
                match service
                    .permissions
                    .iter()
                    .find(|(_, s)| s.as_ref() == scope)
                {
                    Some((_, s)) if !granted.contains(s) => granted.push(s.clone()),
                    Some(_) => {}
                    None => errors.push(
                        format!("{path}.scopes[{j}]"),
                        format!(
                            "{scope:?} is not a permission of enterprise service {:?}",
                            e.node
                        ),
                    ),
                }
            }
            if service_grants
                .entry(service.id.clone())
                .or_default()
                .insert(agent.clone(), granted)
                .is_some()
            {
                errors.push(
                    path,
                    format!(
                        "agent {:?} → service {:?} is declared twice",
                        e.agent, e.node
                    ),
                );
            }
            continue;
        }
        let Some((node, _)) = nodes.get_key_value(e.node.as_str()) else {
            errors.push(
                format!("{path}.node"),
                format!("no llm, external or enterprise node has id {:?}", e.node),
            );
            continue;
        };
        let mut scopes = Vec::new();
        for (j, s) in e.scopes.iter().enumerate() {
            if !is_scope_token(s) {
                errors.push(
                    format!("{path}.scopes[{j}]"),
                    "a scope is 1-128 printable ASCII characters without spaces, quotes or backslashes",
                );
            } else if !scopes.iter().any(|x: &Arc<str>| x.as_ref() == s) {
                scopes.push(Arc::from(s.as_str()));
            }
        }
        let edge = Edge {
            agent: agent.clone(),
            node: node.clone(),
            required_scopes: scopes,
        };
        if edges
            .entry(node.clone())
            .or_default()
            .insert(agent.clone(), edge)
            .is_some()
        {
            errors.push(
                path,
                format!(
                    "agent {:?} → node {:?} is declared twice; list every scope in one entry",
                    e.agent, e.node
                ),
            );
        }
    }

    let clients = clients(&raw, &agents, &services, &directory, &mut errors);
    let mut inbound = ScopeGrants::new();
    for (i, e) in raw.inbound.iter().enumerate() {
        let path = format!("inbound[{i}]");
        let Some((client, _)) = clients.get_key_value(e.client.as_str()) else {
            errors.push(
                format!("{path}.client"),
                format!("no client has id {:?}", e.client),
            );
            continue;
        };
        let Some((agent_id, agent)) = agents.get_key_value(e.agent.as_str()) else {
            errors.push(
                format!("{path}.agent"),
                format!("no agent has id {:?}", e.agent),
            );
            continue;
        };
        let mut granted: Vec<Arc<str>> = Vec::new();
        for (j, scope) in e.scopes.iter().enumerate() {
            if *scope == *agent.permission.scope {
                if !granted.contains(&agent.permission.scope) {
                    granted.push(agent.permission.scope.clone());
                }
            } else {
                errors.push(
                    format!("{path}.scopes[{j}]"),
                    format!(
                        "{scope:?} is not a permission of agent {:?} (its permission scope is {:?})",
                        e.agent, agent.permission.scope
                    ),
                );
            }
        }
        if inbound
            .entry(agent_id.clone())
            .or_default()
            .insert(client.clone(), granted)
            .is_some()
        {
            errors.push(
                path,
                format!(
                    "client {:?} → agent {:?} is declared twice",
                    e.client, e.agent
                ),
            );
        }
    }

    if !errors.0.is_empty() {
        return Err(ValidationErrors(errors.0));
    }
    // `settings` is only None when an error was recorded.
    let Some(settings) = settings else {
        return Err(ValidationErrors(vec![ValidationError {
            path: "listeners".into(),
            line: None,
            message: "invalid".into(),
        }]));
    };
    Ok(Snapshot {
        generation: ctx.generation,
        store_version: 0,
        settings,
        issuers,
        agents,
        credentials,
        nodes,
        edges,
        directory,
        clients,
        inbound,
        services,
        service_grants,
        identity: identity.map(Arc::new),
    })
}

fn settings(raw: &RawConfig, ctx: &BuildContext<'_>, errors: &mut Errors) -> Option<Settings> {
    let addr = |value: &Option<String>, default: &str, path: &str, errors: &mut Errors| {
        let text = value.as_deref().unwrap_or(default);
        text.parse::<SocketAddr>()
            .map_err(|_| {
                errors.push(
                    path,
                    format!("{text:?} is not an address like 127.0.0.1:8080"),
                )
            })
            .ok()
    };
    let public_addr = addr(
        &raw.listeners.public,
        defaults::PUBLIC_ADDR,
        "listeners.public",
        errors,
    );
    let admin_addr = addr(
        &raw.listeners.admin,
        defaults::ADMIN_ADDR,
        "listeners.admin",
        errors,
    );
    let tls = raw.listeners.tls.as_ref().map(|t| {
        let cert_file = resolve(&ctx.base_dir, &t.cert_file);
        let key_file = resolve(&ctx.base_dir, &t.key_file);
        for (file, path) in [
            (&cert_file, "listeners.tls.cert_file"),
            (&key_file, "listeners.tls.key_file"),
        ] {
            if !file.is_file() {
                errors.push(path, format!("{} is not a readable file", file.display()));
            }
        }
        TlsFiles {
            cert_file,
            key_file,
        }
    });
    let l = &raw.limits;
    let limits = Limits {
        max_header_bytes: bounded(
            l.max_header_bytes,
            32 * 1024,
            1024,
            1024 * 1024,
            "limits.max_header_bytes",
            errors,
        ),
        max_headers: bounded(l.max_headers, 100, 8, 1000, "limits.max_headers", errors),
        max_uri_bytes: bounded(
            l.max_uri_bytes,
            8 * 1024,
            256,
            64 * 1024,
            "limits.max_uri_bytes",
            errors,
        ),
        max_body_bytes: l.max_body_bytes.unwrap_or(10 * 1024 * 1024),
        header_read_timeout: Duration::from_millis(bounded(
            l.header_read_timeout_ms,
            10_000,
            100,
            600_000,
            "limits.header_read_timeout_ms",
            errors,
        )),
    };
    let u = &raw.upstream;
    let ms = |v: Option<u64>, default: u64, path: &str, errors: &mut Errors| {
        Duration::from_millis(bounded(v, default, 1, 3_600_000, path, errors))
    };
    let upstream = UpstreamSettings {
        connect_timeout: ms(
            u.connect_timeout_ms,
            5_000,
            "upstream.connect_timeout_ms",
            errors,
        ),
        response_header_timeout: ms(
            u.response_header_timeout_ms,
            300_000,
            "upstream.response_header_timeout_ms",
            errors,
        ),
        pool_idle_timeout: ms(
            u.pool_idle_timeout_ms,
            90_000,
            "upstream.pool_idle_timeout_ms",
            errors,
        ),
        extra_ca_file: u.extra_ca_file.as_ref().map(|p| {
            let p = resolve(&ctx.base_dir, p);
            if !p.is_file() {
                errors.push(
                    "upstream.extra_ca_file",
                    format!("{} is not a readable file", p.display()),
                );
            }
            p
        }),
    };
    let watch_interval = match raw.reload.watch_interval_ms.unwrap_or(1000) {
        0 => None,
        ms if ms < 50 => {
            errors.push("reload.watch_interval_ms", "must be 0 (off) or at least 50");
            None
        }
        ms => Some(Duration::from_millis(ms)),
    };
    let token_cache_entries = bounded(
        raw.tokens.cache_entries,
        100_000,
        0,
        10_000_000,
        "tokens.cache_entries",
        errors,
    );
    let m2m_licenses = bounded(
        raw.store.m2m_licenses,
        10,
        1,
        1_000_000,
        "store.m2m_licenses",
        errors,
    );
    let max_credentials = bounded(
        raw.store.max_credentials,
        100,
        1,
        1_000_000,
        "store.max_credentials",
        errors,
    );
    Some(Settings {
        public_addr: public_addr?,
        admin_addr: admin_addr?,
        tls,
        limits,
        upstream,
        watch_interval,
        token_cache_entries,
        m2m_licenses,
        max_credentials,
        upstream_allow_hosts: raw.admin.upstream_allow_hosts.clone().unwrap_or_default(),
        redis_url: raw.store.redis_url.clone(),
        redis_prefix: raw
            .store
            .redis_prefix
            .clone()
            .unwrap_or_else(|| defaults::REDIS_PREFIX.into()),
        redis_staleness: Duration::from_millis(raw.store.redis_staleness_ms.unwrap_or(15_000)),
        redis_max_staleness: Duration::from_millis(
            raw.store.redis_max_staleness_ms.unwrap_or(300_000),
        ),
    })
}

fn bounded<T>(value: Option<T>, default: T, min: T, max: T, path: &str, errors: &mut Errors) -> T
where
    T: PartialOrd + Copy + std::fmt::Display,
{
    let v = value.unwrap_or(default);
    if v < min || v > max {
        errors.push(path, format!("must be between {min} and {max}, got {v}"));
        return default;
    }
    v
}

fn issuer(
    raw: &RawIssuer,
    path: &str,
    ctx: &BuildContext<'_>,
    errors: &mut Errors,
) -> Option<Issuer> {
    let before = errors.0.len();
    if raw.issuer.trim().is_empty() || raw.issuer.len() > 512 {
        errors.push(
            format!("{path}.issuer"),
            "must be a non-empty string of at most 512 characters",
        );
    }
    if raw.audience.trim().is_empty() || raw.audience.len() > 512 {
        errors.push(
            format!("{path}.audience"),
            "must be a non-empty string of at most 512 characters",
        );
    }
    let keys = match (&raw.jwks_file, &raw.jwks_url) {
        (Some(file), None) => {
            let file = resolve(&ctx.base_dir, file);
            if let Err(why) = read_jwks(&file) {
                errors.push(format!("{path}.jwks_file"), why);
            }
            Some(KeySource::File(file))
        }
        (None, Some(url)) => {
            match url.parse::<http::Uri>() {
                Ok(uri) if uri.scheme_str() == Some("https") && uri.host().is_some() => {}
                _ => errors.push(format!("{path}.jwks_url"), "must be an https:// URL"),
            }
            Some(KeySource::Url(url.clone()))
        }
        _ => {
            errors.push(path, "set exactly one of jwks_file and jwks_url");
            None
        }
    };
    let mut accepted_typ = Vec::new();
    for (i, t) in raw
        .accepted_typ
        .clone()
        .unwrap_or_else(|| vec![defaults::ACCESS_TOKEN_TYP.into()])
        .iter()
        .enumerate()
    {
        let t = normalize_typ(t);
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) {
            errors.push(
                format!("{path}.accepted_typ[{i}]"),
                "must be a media type such as at+jwt",
            );
        }
        accepted_typ.push(t);
    }
    if accepted_typ.is_empty() {
        errors.push(format!("{path}.accepted_typ"), "must list at least one typ");
    }
    let leeway_seconds = raw
        .leeway_seconds
        .unwrap_or(defaults::ISSUER_LEEWAY_SECONDS);
    if leeway_seconds > MAX_LEEWAY {
        errors.push(
            format!("{path}.leeway_seconds"),
            format!("must be at most {MAX_LEEWAY}"),
        );
    }
    let refresh = raw
        .jwks_refresh_seconds
        .unwrap_or(defaults::JWKS_REFRESH_SECONDS);
    if !(30..=86_400).contains(&refresh) {
        errors.push(
            format!("{path}.jwks_refresh_seconds"),
            "must be between 30 and 86400",
        );
    }
    if errors.0.len() != before {
        return None;
    }
    Some(Issuer {
        issuer: raw.issuer.clone(),
        audience: raw.audience.clone(),
        keys: keys?,
        accepted_typ,
        leeway_seconds,
        jwks_refresh: Duration::from_secs(refresh),
    })
}

/// Reads and parses a JWKS file, checking that it holds at least one key this build can verify with.
///
/// # Errors
/// A message naming what is wrong (unreadable, not JSON, no usable key).
pub fn read_jwks(path: &Path) -> Result<jsonwebtoken::jwk::JwkSet, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a JWKS document: {e}", path.display()))?;
    if set.keys.is_empty() {
        return Err(format!("{} holds no keys", path.display()));
    }
    Ok(set)
}

/// `typ` values compare as media types: case-insensitive, `application/` optional (RFC 9068 §2.1).
pub fn normalize_typ(typ: &str) -> String {
    let t = typ.trim().to_ascii_lowercase();
    match t.strip_prefix("application/") {
        Some(rest) => rest.to_owned(),
        None => t,
    }
}

fn directory(raw: &RawConfig, errors: &mut Errors) -> Directory {
    let mut dir = Directory::default();
    for (i, o) in raw.organizations.iter().enumerate() {
        check_id(
            &o.id,
            &format!("organizations[{i}].id"),
            IdKind::Principal,
            errors,
        );
        let name = defaults::display_name(o.name.as_deref(), &o.id);
        if dir
            .organizations
            .insert(
                Arc::from(o.id.as_str()),
                (name, o.parent.as_deref().map(Arc::from)),
            )
            .is_some()
        {
            errors.push(
                format!("organizations[{i}].id"),
                format!("organization {:?} is declared twice", o.id),
            );
        }
    }
    for (i, o) in raw.organizations.iter().enumerate() {
        if let Some(parent) = &o.parent {
            if !dir.organizations.contains_key(parent.as_str()) {
                errors.push(
                    format!("organizations[{i}].parent"),
                    format!("no organization has id {parent:?}"),
                );
                continue;
            }
            // Walk up from this unit; meeting it again means a cycle.
            let mut at = parent.clone();
            for _ in 0..=dir.organizations.len() {
                if at == o.id {
                    errors.push(
                        format!("organizations[{i}].parent"),
                        "the organization tree has a cycle here",
                    );
                    break;
                }
                match dir.organizations.get(at.as_str()) {
                    Some((_, Some(p))) => at = p.to_string(),
                    _ => break,
                }
            }
        }
    }
    for (i, g) in raw.groups.iter().enumerate() {
        check_id(&g.id, &format!("groups[{i}].id"), IdKind::Principal, errors);
        if dir
            .groups
            .insert(
                Arc::from(g.id.as_str()),
                defaults::display_name(g.name.as_deref(), &g.id),
            )
            .is_some()
        {
            errors.push(
                format!("groups[{i}].id"),
                format!("group {:?} is declared twice", g.id),
            );
        }
    }
    for (i, u) in raw.users.iter().enumerate() {
        let path = format!("users[{i}]");
        check_id(&u.id, &format!("{path}.id"), IdKind::Principal, errors);
        let organization =
            u.organization
                .as_deref()
                .and_then(|o| match dir.organizations.get_key_value(o) {
                    Some((k, _)) => Some(k.clone()),
                    None => {
                        errors.push(
                            format!("{path}.organization"),
                            format!("no organization has id {o:?}"),
                        );
                        None
                    }
                });
        let mut groups = Vec::new();
        for (j, g) in u.groups.iter().enumerate() {
            match dir.groups.get_key_value(g.as_str()) {
                Some((k, _)) => groups.push(k.clone()),
                None => errors.push(
                    format!("{path}.groups[{j}]"),
                    format!("no group has id {g:?}"),
                ),
            }
        }
        let user = User {
            id: Arc::from(u.id.as_str()),
            name: defaults::display_name(u.name.as_deref(), &u.id),
            email: u.email.clone(),
            organization,
            groups,
            password_hash: u.password_hash.clone(),
        };
        if let Some(h) = &u.password_hash
            && !h.starts_with("$argon2id$")
        {
            errors.push(
                format!("{path}.password_hash"),
                "must be an argon2id PHC string ($argon2id$...); set passwords through the admin API",
            );
        }
        if dir.users.insert(user.id.clone(), user).is_some() {
            errors.push(
                format!("{path}.id"),
                format!("user {:?} is declared twice", u.id),
            );
        }
    }
    dir
}

fn clients(
    raw: &RawConfig,
    agents: &HashMap<Arc<str>, Agent>,
    services: &HashMap<Arc<str>, Service>,
    dir: &Directory,
    errors: &mut Errors,
) -> HashMap<Arc<str>, Client> {
    let mut out = HashMap::new();
    for (i, c) in raw.clients.iter().enumerate() {
        let path = format!("clients[{i}]");
        check_id(&c.id, &format!("{path}.id"), IdKind::Principal, errors);
        // One client_id namespace for every principal (RFC 9700 §4.15: no confusion between kinds of client).
        if agents.contains_key(c.id.as_str()) || services.contains_key(c.id.as_str()) {
            errors.push(
                format!("{path}.id"),
                format!("{:?} is already the id of an agent or service", c.id),
            );
        }
        let mut redirect_uris = Vec::new();
        for (j, uri) in c.redirect_uris.iter().enumerate() {
            let p = format!("{path}.redirect_uris[{j}]");
            if uri.contains('#') {
                errors.push(
                    p,
                    "a URI with # is cut at the # by the browser; write %23 instead",
                );
                continue;
            }
            match uri.parse::<http::Uri>() {
                Ok(u)
                    if matches!(u.scheme_str(), Some("http" | "https"))
                        && u.authority().is_some() =>
                {
                    redirect_uris.push(uri.clone());
                }
                _ => errors.push(p, "must be an absolute http:// or https:// URL"),
            }
        }
        let (auth, secrets, keys) =
            principal_credentials(c.auth.as_deref(), &c.secrets, &c.keys, &path, errors);
        let mut refs =
            |list: &[String], field: &str, known: &dyn Fn(&str) -> bool| -> Vec<Arc<str>> {
                let mut v = Vec::new();
                for (j, id) in list.iter().enumerate() {
                    if known(id) {
                        v.push(Arc::from(id.as_str()));
                    } else {
                        errors.push(
                            format!("{path}.{field}[{j}]"),
                            format!("no {} has id {id:?}", field.trim_end_matches('s')),
                        );
                    }
                }
                v
            };
        let users = refs(&c.users, "users", &|id| dir.users.contains_key(id));
        let groups = refs(&c.groups, "groups", &|id| dir.groups.contains_key(id));
        let organizations = refs(&c.organizations, "organizations", &|id| {
            dir.organizations.contains_key(id)
        });
        let client = Client {
            id: Arc::from(c.id.as_str()),
            name: defaults::display_name(c.name.as_deref(), &c.id),
            redirect_uris,
            auth,
            secrets,
            keys,
            users,
            groups,
            organizations,
            enabled: c.enabled.unwrap_or(defaults::ENABLED),
        };
        if out.insert(client.id.clone(), client).is_some() {
            errors.push(
                format!("{path}.id"),
                format!("client {:?} is declared twice", c.id),
            );
        }
    }
    out
}

type AgentCredentials = (ClientAuth, Vec<(String, Vec<u8>)>, Vec<PublicKey>);

fn agent_credentials(a: &RawAgent, path: &str, errors: &mut Errors) -> AgentCredentials {
    principal_credentials(a.auth.as_deref(), &a.secrets, &a.keys, path, errors)
}

fn principal_credentials(
    auth: Option<&str>,
    raw_secrets: &[RawClientSecret],
    raw_keys: &[RawPublicKey],
    path: &str,
    errors: &mut Errors,
) -> AgentCredentials {
    let auth = match auth.unwrap_or(defaults::CLIENT_AUTH) {
        "client_secret" => ClientAuth::ClientSecret,
        "private_key_jwt" => ClientAuth::PrivateKeyJwt,
        other => {
            errors.push(
                format!("{path}.auth"),
                format!("must be \"client_secret\" or \"private_key_jwt\", got {other:?}"),
            );
            ClientAuth::ClientSecret
        }
    };
    let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, s) in raw_secrets.iter().enumerate() {
        match decode_hex32(&s.hash) {
            None => errors.push(
                format!("{path}.secrets[{i}].hash"),
                "must be 64 hex characters (HMAC-SHA256)",
            ),
            Some(_) if secrets.iter().any(|(id, _)| *id == s.id) => {
                errors.push(
                    format!("{path}.secrets[{i}].id"),
                    format!("secret id {:?} is used twice", s.id),
                );
            }
            Some(h) => secrets.push((s.id.clone(), h)),
        }
    }
    let mut keys: Vec<PublicKey> = Vec::new();
    for (i, k) in raw_keys.iter().enumerate() {
        let p = format!("{path}.keys[{i}]");
        if keys.iter().any(|x| x.id == k.id) {
            errors.push(
                format!("{p}.id"),
                format!("key id {:?} is used twice", k.id),
            );
            continue;
        }
        match public_key(k) {
            Ok(key) => keys.push(key),
            Err(why) => errors.push(p, why),
        }
    }
    (auth, secrets, keys)
}

fn agent_permission(
    a: &RawAgent,
    path: &str,
    dir: &Directory,
    errors: &mut Errors,
) -> AgentPermission {
    let raw = a.permission.clone().unwrap_or_default();
    let path = format!("{path}.permission");
    let scope = raw
        .scope
        .clone()
        .unwrap_or_else(|| defaults::AGENT_PERMISSION_SCOPE.into());
    if !is_scope_token(&scope) {
        errors.push(
            format!("{path}.scope"),
            "a scope is 1-128 printable ASCII characters without spaces, quotes or backslashes",
        );
    }
    let manual = match raw.mode.as_deref() {
        None | Some("auto") => false,
        Some("manual") => true,
        Some(other) => {
            errors.push(
                format!("{path}.mode"),
                format!("must be \"auto\" or \"manual\", got {other:?}"),
            );
            false
        }
    };
    let assigned = !raw.users.is_empty() || !raw.groups.is_empty() || !raw.organizations.is_empty();
    if assigned && !manual {
        errors.push(
            path.clone(),
            "users, groups and organizations apply only in mode = \"manual\"",
        );
    }
    let mut pick = |list: &[String], field: &str, known: &dyn Fn(&str) -> bool| -> Vec<Arc<str>> {
        let mut out = Vec::new();
        for (j, id) in list.iter().enumerate() {
            if known(id) {
                out.push(Arc::from(id.as_str()));
            } else {
                errors.push(
                    format!("{path}.{field}[{j}]"),
                    format!("no {} has id {id:?}", field.trim_end_matches('s')),
                );
            }
        }
        out
    };
    let users = pick(&raw.users, "users", &|id| dir.users.contains_key(id));
    let groups = pick(&raw.groups, "groups", &|id| dir.groups.contains_key(id));
    let organizations = pick(&raw.organizations, "organizations", &|id| {
        dir.organizations.contains_key(id)
    });
    AgentPermission {
        name: raw
            .name
            .unwrap_or_else(|| defaults::agent_permission_name(&a.id)),
        scope: Arc::from(scope.as_str()),
        manual,
        users,
        groups,
        organizations,
    }
}

fn service(
    raw: &RawService,
    path: &str,
    audiences: &mut HashSet<String>,
    credentials: &HashMap<Arc<str>, Credential>,
    errors: &mut Errors,
) -> Option<Service> {
    let before = errors.0.len();
    check_id(&raw.id, &format!("{path}.id"), IdKind::Route, errors);
    let aud = &raw.audience;
    if aud.is_empty() || aud.len() > 512 || !aud.bytes().all(|b| b.is_ascii_graphic()) {
        errors.push(
            format!("{path}.audience"),
            "must be 1-512 printable ASCII characters without spaces",
        );
    } else if !audiences.insert(aud.clone()) {
        errors.push(
            format!("{path}.audience"),
            format!("audience {aud:?} is used by another agent or service"),
        );
    }
    let upstream = raw
        .upstream
        .as_ref()
        .and_then(|u| upstream_url(u, &format!("{path}.upstream"), errors));
    let mut permissions: Vec<(String, Arc<str>)> = Vec::new();
    for (i, p) in raw.permissions.iter().enumerate() {
        if !is_scope_token(&p.scope) {
            errors.push(
                format!("{path}.permissions[{i}].scope"),
                "a scope is 1-128 printable ASCII characters without spaces, quotes or backslashes",
            );
        } else if permissions.iter().any(|(_, s)| s.as_ref() == p.scope) {
            errors.push(
                format!("{path}.permissions[{i}].scope"),
                format!(
                    "scope {:?} is already a permission of this service",
                    p.scope
                ),
            );
        } else {
            permissions.push((
                defaults::display_name(p.name.as_deref(), &p.scope),
                Arc::from(p.scope.as_str()),
            ));
        }
    }
    let exchange = raw.exchange.as_ref().map(|x| {
        endpoint_url(&x.token_url, &format!("{path}.exchange.token_url"), errors);
        if x.client_id.is_some() != x.credential.is_some() {
            errors.push(
                format!("{path}.exchange"),
                "set client_id and credential together, or neither",
            );
        }
        if let Some(c) = &x.credential
            && !credentials.contains_key(c.as_str())
        {
            errors.push(
                format!("{path}.exchange.credential"),
                format!("no credential has id {c:?}"),
            );
        }
        ExchangeEndpoint {
            token_url: x.token_url.clone(),
            client_id: x.client_id.clone(),
            credential: x.credential.as_deref().map(Arc::from),
        }
    });
    if errors.0.len() != before {
        return None;
    }
    Some(Service {
        id: Arc::from(raw.id.as_str()),
        name: defaults::display_name(raw.name.as_deref(), &raw.id),
        audience: aud.clone(),
        upstream,
        permissions,
        exchange,
    })
}

fn credential(
    raw: &RawCredential,
    path: &str,
    ctx: &BuildContext<'_>,
    errors: &mut Errors,
) -> Option<Credential> {
    let before = errors.0.len();
    check_id(&raw.id, &format!("{path}.id"), IdKind::Principal, errors);
    let kind = match raw.kind.as_str() {
        "llm" => Some(NodeKind::Llm),
        "external" => Some(NodeKind::External),
        other => {
            errors.push(
                format!("{path}.kind"),
                format!("must be \"llm\" or \"external\", got {other:?}"),
            );
            None
        }
    };
    let value = match (&raw.sealed, &raw.env) {
        (Some(sealed), None) => match seal::inspect(sealed) {
            Err(e) => {
                errors.push(
                    format!("{path}.sealed"),
                    format!("{e}; produce it with `idguard seal`"),
                );
                None
            }
            Ok(_) => Some(match ctx.master_keys {
                None => Err(CredentialUnavailable::Seal(SealError::NoMasterKey)),
                Some(keys) => keys
                    .open(&raw.id, sealed)
                    .map_err(CredentialUnavailable::Seal),
            }),
        },
        (None, Some(var)) => {
            if var.is_empty() || !var.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                errors.push(
                    format!("{path}.env"),
                    "must be an environment variable name ([A-Za-z0-9_]+)",
                );
                None
            } else {
                Some(match (ctx.env)(var) {
                    Some(v) if !v.is_empty() => Ok(Secret::new(v)),
                    _ => Err(CredentialUnavailable::EnvMissing(var.clone())),
                })
            }
        }
        _ => {
            errors.push(
                path,
                "set exactly one of sealed and env (a plaintext value is never accepted)",
            );
            None
        }
    };
    if errors.0.len() != before {
        return None;
    }
    Some(Credential {
        id: Arc::from(raw.id.as_str()),
        name: defaults::display_name(raw.name.as_deref(), &raw.id),
        kind: kind?,
        value: value?,
    })
}

fn node(
    raw: &RawNode,
    kind: NodeKind,
    path: &str,
    credentials: &HashMap<Arc<str>, Credential>,
    errors: &mut Errors,
) -> Option<Node> {
    let before = errors.0.len();
    check_id(&raw.id, &format!("{path}.id"), IdKind::Route, errors);
    let upstream = upstream_url(&raw.upstream, &format!("{path}.upstream"), errors);
    let header_name = |name: &Option<String>, field: &str, errors: &mut Errors| -> Option<String> {
        match name {
            Some(n) if is_header_name(n) => Some(n.to_ascii_lowercase()),
            Some(_) => {
                errors.push(format!("{path}.{field}"), "is not a valid header name");
                None
            }
            None => {
                errors.push(
                    format!("{path}.{field}"),
                    format!("is required when style = {:?}", raw.style),
                );
                None
            }
        }
    };
    let style = match raw.style.as_str() {
        "bearer" => Some(InjectStyle::Bearer),
        "anthropic" => Some(InjectStyle::Anthropic),
        "azure" => Some(InjectStyle::Azure),
        "gemini" => Some(InjectStyle::Gemini),
        "header" => header_name(&raw.header, "header", errors).map(|name| InjectStyle::Header {
            name,
            prefix: raw.prefix.clone().unwrap_or_default(),
        }),
        "query" => match &raw.query {
            Some(q)
                if !q.is_empty()
                    && q.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) =>
            {
                Some(InjectStyle::Query { name: q.clone() })
            }
            Some(_) => {
                errors.push(
                    format!("{path}.query"),
                    "must be a parameter name ([A-Za-z0-9._-]+)",
                );
                None
            }
            None => {
                errors.push(
                    format!("{path}.query"),
                    "is required when style = \"query\"",
                );
                None
            }
        },
        other => {
            errors.push(
                format!("{path}.style"),
                format!(
                    "must be one of bearer, anthropic, azure, gemini, header, query; got {other:?}"
                ),
            );
            None
        }
    };
    if raw.header.is_some() && raw.style != "header" {
        errors.push(
            format!("{path}.header"),
            "only applies to style = \"header\"",
        );
    }
    if raw.query.is_some() && raw.style != "query" {
        errors.push(format!("{path}.query"), "only applies to style = \"query\"");
    }
    if let Some(prefix) = &raw.prefix {
        if raw.style != "header" {
            errors.push(
                format!("{path}.prefix"),
                "only applies to style = \"header\"",
            );
        } else if !prefix.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
            errors.push(format!("{path}.prefix"), "must be printable ASCII");
        }
    }
    match credentials.get(raw.credential.as_str()) {
        None => errors.push(
            format!("{path}.credential"),
            format!("no credential has id {:?}", raw.credential),
        ),
        Some(c) if c.kind != kind => errors.push(
            format!("{path}.credential"),
            format!(
                "credential {:?} has kind {:?} but this is an {} node",
                raw.credential,
                c.kind.as_str(),
                kind.as_str()
            ),
        ),
        Some(_) => {}
    }
    let methods = match &raw.methods {
        None => defaults::METHODS.iter().map(|m| (*m).to_owned()).collect(),
        Some(list) => {
            let mut out = Vec::new();
            for (i, m) in list.iter().enumerate() {
                let upper = m.to_ascii_uppercase();
                if upper == "TRACE" || upper == "CONNECT" {
                    errors.push(
                        format!("{path}.methods[{i}]"),
                        "TRACE and CONNECT are never proxied",
                    );
                } else if upper.is_empty() || !upper.bytes().all(|b| b.is_ascii_uppercase()) {
                    errors.push(
                        format!("{path}.methods[{i}]"),
                        "must be an HTTP method name",
                    );
                } else {
                    out.push(upper);
                }
            }
            out
        }
    };
    let oauth = raw.oauth.as_ref().map(|o| {
        if kind != NodeKind::External {
            errors.push(
                format!("{path}.oauth"),
                "only external nodes obtain tokens with OAuth client credentials",
            );
        }
        endpoint_url(&o.token_url, &format!("{path}.oauth.token_url"), errors);
        if o.client_id.is_empty() || o.client_id.len() > 256 {
            errors.push(format!("{path}.oauth.client_id"), "must be 1-256 characters");
        }
        for (i, sc) in o.scopes.iter().enumerate() {
            if !is_scope_token(sc) {
                errors.push(
                    format!("{path}.oauth.scopes[{i}]"),
                    "a scope is 1-128 printable ASCII characters without spaces, quotes or backslashes",
                );
            }
        }
        OAuthClient {
            token_url: o.token_url.clone(),
            client_id: o.client_id.clone(),
            scope: o.scopes.join(" "),
        }
    });
    if errors.0.len() != before {
        return None;
    }
    Some(Node {
        id: Arc::from(raw.id.as_str()),
        name: defaults::display_name(raw.name.as_deref(), &raw.id),
        kind,
        upstream: upstream?,
        style: style?,
        credential: Arc::from(raw.credential.as_str()),
        forward_identity: raw.forward_identity.unwrap_or(false),
        methods,
        oauth,
    })
}

/// A token endpoint: an absolute https URL (or http to loopback), no user information or fragment.
fn endpoint_url(text: &str, path: &str, errors: &mut Errors) {
    match text.parse::<http::Uri>() {
        Ok(uri)
            if uri.authority().is_some_and(|a| !a.as_str().contains('@'))
                && (uri.scheme_str() == Some("https")
                    || (uri.scheme_str() == Some("http")
                        && uri.host().is_some_and(is_loopback_host))) => {}
        _ => errors.push(
            path,
            "must be an absolute https:// URL (http only to a loopback host), without user information",
        ),
    }
}

fn identity(raw: &RawIdentity, errors: &mut Errors) -> Option<IdentitySettings> {
    let before = errors.0.len();
    let issuer = raw.issuer.trim_end_matches('/').to_owned();
    match issuer.parse::<http::Uri>() {
        Ok(uri)
            if matches!(uri.scheme_str(), Some("https" | "http"))
                && uri.authority().is_some_and(|a| !a.as_str().contains('@'))
                && uri.query().is_none()
                && !issuer.contains('#') => {}
        _ => errors.push(
            "identity.issuer",
            "must be an absolute http(s) URL without query or fragment, e.g. https://idguard.example.com",
        ),
    }
    let audience = raw
        .audience
        .clone()
        .unwrap_or_else(|| defaults::PROXY_AUDIENCE.into());
    if audience.is_empty()
        || audience.len() > 512
        || !audience.bytes().all(|b| b.is_ascii_graphic())
    {
        errors.push(
            "identity.audience",
            "must be 1-512 printable ASCII characters without spaces",
        );
    }
    let access_token_ttl = bounded(
        raw.access_token_ttl_seconds,
        900,
        60,
        86_400,
        "identity.access_token_ttl_seconds",
        errors,
    );
    let exchange_max_ttl = bounded(
        raw.exchange_max_ttl_seconds,
        300,
        30,
        3_600,
        "identity.exchange_max_ttl_seconds",
        errors,
    );
    let rotation = bounded(
        raw.signing_key_rotation_seconds,
        86_400,
        60,
        365 * 86_400,
        "identity.signing_key_rotation_seconds",
        errors,
    );
    let max_failed = bounded(
        raw.max_failed_auth_per_minute,
        50,
        1,
        100_000,
        "identity.max_failed_auth_per_minute",
        errors,
    );
    let max_act_depth = bounded(
        raw.max_act_depth,
        3,
        1,
        10,
        "identity.max_act_depth",
        errors,
    );
    if errors.0.len() != before {
        return None;
    }
    Some(IdentitySettings {
        issuer,
        audience,
        access_token_ttl: Duration::from_secs(access_token_ttl),
        exchange_max_ttl: Duration::from_secs(exchange_max_ttl),
        key_rotation: Duration::from_secs(rotation),
        accept_token_endpoint_audience: raw.accept_token_endpoint_audience.unwrap_or(false),
        max_failed_auth_per_minute: max_failed,
        max_act_depth,
    })
}

fn upstream_url(text: &str, path: &str, errors: &mut Errors) -> Option<UpstreamUrl> {
    let Ok(uri) = text.parse::<http::Uri>() else {
        errors.push(path, format!("{text:?} is not a URL"));
        return None;
    };
    let scheme = uri.scheme_str().unwrap_or_default();
    let Some(authority) = uri.authority() else {
        errors.push(path, "must be an absolute http:// or https:// URL");
        return None;
    };
    if authority.as_str().contains('@') {
        errors.push(
            path,
            "must not carry user information; store credentials as credentials",
        );
        return None;
    }
    if uri.query().is_some() {
        errors.push(
            path,
            "must not carry a query; put query credentials in a credential with style = \"query\"",
        );
        return None;
    }
    match scheme {
        "https" => {}
        "http" if is_loopback_host(authority.host()) => {}
        "http" => {
            errors.push(
                path,
                "plain http is only allowed to loopback upstreams: the injected key would cross the network in clear",
            );
            return None;
        }
        _ => {
            errors.push(
                path,
                "scheme must be https (or http for a loopback upstream)",
            );
            return None;
        }
    }
    let base = uri.path().trim_end_matches('/');
    if base.split('/').any(|s| s == "." || s == "..") || base.contains('%') || base.contains("//") {
        errors.push(
            path,
            "the base path must be plain segments, without dot segments or percent-escapes",
        );
        return None;
    }
    Some(UpstreamUrl {
        scheme: scheme.to_owned(),
        authority: authority.as_str().to_owned(),
        base_path: base.to_owned(),
    })
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

enum IdKind {
    /// Agents and credentials: `[A-Za-z0-9._:-]{1,128}`.
    Principal,
    /// Nodes (they appear in paths): `[A-Za-z0-9._-]{1,64}`, not `.` or `..`.
    Route,
}

fn check_id(id: &str, path: &str, kind: IdKind, errors: &mut Errors) {
    let ok = match kind {
        IdKind::Principal => {
            (1..=128).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
        }
        IdKind::Route => {
            (1..=64).contains(&id.len())
                && id != "."
                && id != ".."
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        }
    };
    if !ok {
        let rule = match kind {
            IdKind::Principal => "1-128 characters of A-Z a-z 0-9 . _ : -",
            IdKind::Route => "1-64 characters of A-Z a-z 0-9 . _ - (it appears in request paths)",
        };
        errors.push(path, format!("{id:?} is not a valid id: use {rule}"));
    }
}

/// RFC 6749 scope-token: `%x21 / %x23-5B / %x5D-7E`, here at most 128 bytes.
pub fn is_scope_token(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^`|~".contains(&b))
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

#[cfg(test)]
mod tests;
