//! `[[enterprise]]`: the services agents call with exchanged tokens, each with its own audience, the permissions
//! (scopes) it grants, and the token endpoint it exchanges at.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::rules::{
    AUDIENCE_RULE, Errors, IdKind, SCOPE_RULE, check_binding, check_id, endpoint_url, is_audience,
    is_scope_token, origin, upstream_url, url_host,
};
use crate::defaults;
use crate::raw::{RawConfig, RawExchange, RawService};
use crate::snapshot::{Credential, ExchangeEndpoint, Node, Origin, Service};
use crate::store::Kind;

/// Every service by id. A service's id may not be a node's, and its audience may not be one in `audiences`
/// (the agents'), to which it is added.
pub(super) fn services(
    raw: &RawConfig,
    nodes: &HashMap<Arc<str>, Node>,
    audiences: &mut HashSet<String>,
    credentials: &HashMap<Arc<str>, Credential>,
    errors: &mut Errors,
) -> HashMap<Arc<str>, Service> {
    let mut services: HashMap<Arc<str>, Service> = HashMap::new();
    for (i, svc) in raw.enterprise.iter().enumerate() {
        let path = format!("enterprise[{i}]");
        if let Some(mut service) = service(svc, &path, audiences, credentials, errors) {
            service.origin = origin(raw, Kind::Enterprise, &svc.id);
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
    services
}

fn service(
    raw: &RawService,
    path: &str,
    audiences: &mut HashSet<String>,
    credentials: &HashMap<Arc<str>, Credential>,
    errors: &mut Errors,
) -> Option<Service> {
    let before = errors.len();
    check_id(&raw.id, &format!("{path}.id"), IdKind::Route, errors);
    let aud = &raw.audience;
    if !is_audience(aud) {
        errors.push(format!("{path}.audience"), AUDIENCE_RULE);
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
    let permissions = permissions(raw, path, errors);
    let exchange = raw
        .exchange
        .as_ref()
        .map(|x| exchange(x, path, credentials, errors));
    if errors.len() != before {
        return None;
    }
    Some(Service {
        id: Arc::from(raw.id.as_str()),
        name: defaults::display_name(raw.name.as_deref(), &raw.id),
        audience: aud.clone(),
        upstream,
        permissions,
        exchange,
        origin: Origin::File,
    })
}

/// The service's permissions as (name, scope), each scope once.
fn permissions(raw: &RawService, path: &str, errors: &mut Errors) -> Vec<(String, Arc<str>)> {
    let mut permissions: Vec<(String, Arc<str>)> = Vec::new();
    for (i, p) in raw.permissions.iter().enumerate() {
        if !is_scope_token(&p.scope) {
            errors.push(format!("{path}.permissions[{i}].scope"), SCOPE_RULE);
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
    permissions
}

/// The token endpoint the service exchanges at, with idguard's client id and credential there (both or neither).
fn exchange(
    x: &RawExchange,
    path: &str,
    credentials: &HashMap<Arc<str>, Credential>,
    errors: &mut Errors,
) -> ExchangeEndpoint {
    endpoint_url(&x.token_url, &format!("{path}.exchange.token_url"), errors);
    if x.client_id.is_some() != x.credential.is_some() {
        errors.push(
            format!("{path}.exchange"),
            "set client_id and credential together, or neither",
        );
    }
    if let Some(c) = &x.credential {
        let field = format!("{path}.exchange.credential");
        match credentials.get(c.as_str()) {
            None => errors.push(field, format!("no credential has id {c:?}")),
            Some(cred) => check_binding(cred, url_host(&x.token_url).as_deref(), &field, errors),
        }
    }
    ExchangeEndpoint {
        token_url: x.token_url.clone(),
        client_id: x.client_id.clone(),
        credential: x.credential.as_deref().map(Arc::from),
    }
}
