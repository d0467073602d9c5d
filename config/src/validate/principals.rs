//! The principals that authenticate to the identity service: `[[agents]]` (audience, permission, endpoint) and
//! `[[clients]]` (redirect URIs, whom they serve), and the credentials both register: an `auth` method, secret
//! digests and public keys.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::directory::grantees;
use super::rules::{
    AUDIENCE_RULE, Errors, IdKind, SCOPE_RULE, check_id, is_audience, is_loopback_host,
    is_scope_token, origin, upstream_url,
};
use crate::defaults;
use crate::keys::{decode_hex32, public_key};
use crate::raw::{RawAgent, RawClient, RawClientSecret, RawConfig, RawPublicKey};
use crate::snapshot::{
    Agent, AgentPermission, Client, ClientAuth, Directory, Origin, PublicKey, Service,
};
use crate::store::Kind;

/// How a principal authenticates, its secret digests by id, and its public keys.
type PrincipalCredentials = (ClientAuth, Vec<(String, Vec<u8>)>, Vec<PublicKey>);

/// Every agent by id, and the audiences they took (services may not take them again).
pub(super) fn agents(
    raw: &RawConfig,
    directory: &Directory,
    errors: &mut Errors,
) -> (HashMap<Arc<str>, Agent>, HashSet<String>) {
    let mut agents = HashMap::new();
    let mut audiences = HashSet::new();
    for (i, a) in raw.agents.iter().enumerate() {
        let path = format!("agents[{i}]");
        let mut agent = agent(a, &path, directory, &mut audiences, errors);
        agent.origin = origin(raw, Kind::Agent, &a.id);
        if agents.insert(agent.id.clone(), agent).is_some() {
            errors.push(
                format!("{path}.id"),
                format!("agent id {:?} is declared twice", a.id),
            );
        }
    }
    (agents, audiences)
}

/// Every client by id; a client id may not be an agent's or a service's (one `client_id` namespace).
pub(super) fn clients(
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
        let client = client(c, &path, dir, errors);
        if out.insert(client.id.clone(), client).is_some() {
            errors.push(
                format!("{path}.id"),
                format!("client {:?} is declared twice", c.id),
            );
        }
    }
    out
}

fn agent(
    a: &RawAgent,
    path: &str,
    directory: &Directory,
    audiences: &mut HashSet<String>,
    errors: &mut Errors,
) -> Agent {
    check_id(&a.id, &format!("{path}.id"), IdKind::Principal, errors);
    let audience = a
        .audience
        .clone()
        .unwrap_or_else(|| defaults::agent_audience(&a.id));
    // A derived audience is as good as the id, which is checked above; only an explicit one is checked here.
    if a.audience.is_some() && !is_audience(&audience) {
        errors.push(format!("{path}.audience"), AUDIENCE_RULE);
    } else if !audiences.insert(audience.clone()) {
        errors.push(
            format!("{path}.audience"),
            format!("audience {audience:?} is used by another agent"),
        );
    }
    let permission = agent_permission(a, path, directory, errors);
    let (auth, secrets, keys) =
        principal_credentials(a.auth.as_deref(), &a.secrets, &a.keys, path, errors);
    Agent {
        id: Arc::from(a.id.as_str()),
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
            .and_then(|u| upstream_url(u, &format!("{path}.endpoint"), errors)),
        token_ttl: a
            .token_ttl_seconds
            .and_then(|ttl| token_ttl(ttl, &format!("{path}.token_ttl_seconds"), errors)),
        origin: Origin::File,
    }
}

/// An agent's own token lifetime, within [`defaults::AGENT_TOKEN_TTL_SECONDS`].
fn token_ttl(seconds: u64, path: &str, errors: &mut Errors) -> Option<std::time::Duration> {
    let bounds = defaults::AGENT_TOKEN_TTL_SECONDS;
    if bounds.contains(&seconds) {
        Some(std::time::Duration::from_secs(seconds))
    } else {
        errors.push(path, defaults::agent_token_ttl_rule(seconds));
        None
    }
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
        errors.push(format!("{path}.scope"), SCOPE_RULE);
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
    let [users, groups, organizations] = grantees(
        dir,
        [&raw.users, &raw.groups, &raw.organizations],
        &path,
        errors,
    );
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

fn client(c: &RawClient, path: &str, dir: &Directory, errors: &mut Errors) -> Client {
    let redirect_uris = redirect_uris(c, path, errors);
    let (auth, secrets, keys) =
        principal_credentials(c.auth.as_deref(), &c.secrets, &c.keys, path, errors);
    let [users, groups, organizations] =
        grantees(dir, [&c.users, &c.groups, &c.organizations], path, errors);
    Client {
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
    }
}

/// Absolute https URLs without a fragment; plain http only to a loopback host (`localhost`, 127.0.0.0/8, `[::1]`:
/// native apps, RFC 8252 §7.3), since an authorization code sent in clear over the network can be taken.
fn redirect_uris(c: &RawClient, path: &str, errors: &mut Errors) -> Vec<String> {
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
            Ok(u) if u.scheme_str() == Some("https") && u.authority().is_some() => {
                redirect_uris.push(uri.clone());
            }
            Ok(u) if u.scheme_str() == Some("http") && u.host().is_some_and(is_loopback_host) => {
                redirect_uris.push(uri.clone());
            }
            Ok(u) if u.scheme_str() == Some("http") && u.authority().is_some() => errors.push(
                p,
                "plain http is only allowed to a loopback host (localhost, 127.0.0.1, [::1]): the authorization \
                 code would cross the network in clear",
            ),
            _ => errors.push(p, "must be an absolute https:// URL (http:// only to a loopback host)"),
        }
    }
    redirect_uris
}

fn principal_credentials(
    auth: Option<&str>,
    raw_secrets: &[RawClientSecret],
    raw_keys: &[RawPublicKey],
    path: &str,
    errors: &mut Errors,
) -> PrincipalCredentials {
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
