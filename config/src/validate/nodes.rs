//! `[[credentials]]` and the nodes that inject them: `[[llm]]` and `[[external]]`, each with its upstream, how
//! the credential is injected, the methods it allows and, for external nodes, an OAuth client.

use std::collections::HashMap;
use std::sync::Arc;

use super::BuildContext;
use super::rules::{
    Errors, IdKind, SCOPE_RULE, check_binding, check_id, endpoint_url, host_pattern,
    is_header_name, is_scope_token, origin, upstream_url, url_host,
};
use crate::defaults;
use crate::error::SealError;
use crate::raw::{RawConfig, RawCredential, RawNode, RawOAuthClient};
use crate::seal;
use crate::secret::Secret;
use crate::snapshot::{
    Credential, CredentialUnavailable, InjectStyle, Node, NodeKind, OAuthClient, Origin,
};
use crate::store::Kind;

/// Headers a node may not inject a credential into: hop-by-hop headers (RFC 9110 §7.6.1) and the ones that frame
/// or route the request. Setting one would smuggle a second request, retarget the connection or be stripped on
/// the way (and the key with it, into some proxy's log).
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

/// Every credential by id. A value that cannot be opened (no master key, unset variable) is not an error: the
/// credential loads and reports itself unavailable.
pub(super) fn credentials(
    raw: &RawConfig,
    ctx: &BuildContext<'_>,
    errors: &mut Errors,
) -> HashMap<Arc<str>, Credential> {
    let mut credentials = HashMap::new();
    for (i, c) in raw.credentials.iter().enumerate() {
        let path = format!("credentials[{i}]");
        if let Some(cred) = credential(c, &path, ctx, errors)
            && credentials.insert(cred.id.clone(), cred).is_some()
        {
            errors.push(
                format!("{path}.id"),
                format!("credential id {:?} is declared twice", c.id),
            );
        }
    }
    credentials
}

/// Every llm and external node by id (one id namespace for both).
pub(super) fn nodes(
    raw: &RawConfig,
    credentials: &HashMap<Arc<str>, Credential>,
    errors: &mut Errors,
) -> HashMap<Arc<str>, Node> {
    let mut nodes = HashMap::new();
    for (kind, stored, list, section) in [
        (NodeKind::Llm, Kind::Llm, &raw.llm, "llm"),
        (
            NodeKind::External,
            Kind::External,
            &raw.external,
            "external",
        ),
    ] {
        for (i, n) in list.iter().enumerate() {
            let path = format!("{section}[{i}]");
            let origin = origin(raw, stored, &n.id);
            if let Some(node) = node(n, kind, origin, &path, credentials, errors)
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
    nodes
}

fn credential(
    raw: &RawCredential,
    path: &str,
    ctx: &BuildContext<'_>,
    errors: &mut Errors,
) -> Option<Credential> {
    let before = errors.len();
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
    if let Some(f) = &raw.fingerprint
        && (f.len() != 16
            || !f
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    {
        errors.push(
            format!("{path}.fingerprint"),
            "must be 16 lowercase hex digits, as the admin API writes it",
        );
    }
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
    let hosts = raw
        .hosts
        .as_ref()
        .map(|hosts| bound_hosts(hosts, path, errors));
    if errors.len() != before {
        return None;
    }
    Some(Credential {
        id: Arc::from(raw.id.as_str()),
        name: defaults::display_name(raw.name.as_deref(), &raw.id),
        kind: kind?,
        hosts,
        value: value?,
        line: None,
    })
}

/// A credential's `hosts`, normalized: at least one, each a host name, `*.` and a host name, or an address.
fn bound_hosts(hosts: &[String], path: &str, errors: &mut Errors) -> Vec<String> {
    if hosts.is_empty() {
        errors.push(
            format!("{path}.hosts"),
            "must list at least one host the credential may be sent to",
        );
    }
    let mut out = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        match host_pattern(h) {
            Some(p) => out.push(p),
            None => errors.push(
                format!("{path}.hosts[{i}]"),
                format!(
                    "{h:?} is not a host name, *.domain or IP address (no scheme, port or path)"
                ),
            ),
        }
    }
    out
}

fn node(
    raw: &RawNode,
    kind: NodeKind,
    origin: Origin,
    path: &str,
    credentials: &HashMap<Arc<str>, Credential>,
    errors: &mut Errors,
) -> Option<Node> {
    let before = errors.len();
    check_id(&raw.id, &format!("{path}.id"), IdKind::Route, errors);
    let upstream = upstream_url(&raw.upstream, &format!("{path}.upstream"), errors);
    let style = inject_style(raw, path, errors);
    stray_style_fields(raw, path, errors);
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
        // The stored key goes upstream; an OAuth client secret goes to the token endpoint instead.
        Some(c) => {
            let destination = match &raw.oauth {
                Some(o) => url_host(&o.token_url),
                None => url_host(&raw.upstream),
            };
            check_binding(
                c,
                destination.as_deref(),
                &format!("{path}.credential"),
                errors,
            );
        }
    }
    let methods = methods(raw, path, errors);
    let oauth = raw.oauth.as_ref().map(|o| oauth(o, kind, path, errors));
    if errors.len() != before {
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
        origin,
    })
}

/// How the credential is injected, with the header or query parameter name the style needs.
fn inject_style(raw: &RawNode, path: &str, errors: &mut Errors) -> Option<InjectStyle> {
    let header_name = |name: &Option<String>, field: &str, errors: &mut Errors| -> Option<String> {
        match name {
            Some(n) if is_header_name(n) && !reserved_header(n) => Some(n.to_ascii_lowercase()),
            Some(n) if is_header_name(n) => {
                errors.push(
                    format!("{path}.{field}"),
                    format!(
                        "{n:?} cannot carry a credential: hop-by-hop, framing and routing headers ({}) and \
                         x-idguard-* are set by idguard or the connection, not by a node",
                        RESERVED_HEADERS.join(", ")
                    ),
                );
                None
            }
            Some(_) => {
                errors.push(
                    format!("{path}.{field}"),
                    "is not a valid header name (pseudo-headers such as :authority are not headers)",
                );
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
    match raw.style.as_str() {
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
    }
}

/// Whether `name` is one of [`RESERVED_HEADERS`] or idguard's own `x-idguard-*`.
fn reserved_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    RESERVED_HEADERS.contains(&name.as_str()) || name.starts_with("x-idguard-")
}

/// `header`, `query` and `prefix` are refused where the style does not use them.
fn stray_style_fields(raw: &RawNode, path: &str, errors: &mut Errors) {
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
}

/// The node's methods, upper-cased, or [`defaults::METHODS`]; `TRACE` and `CONNECT` are refused.
fn methods(raw: &RawNode, path: &str, errors: &mut Errors) -> Vec<String> {
    let Some(list) = &raw.methods else {
        return defaults::METHODS.iter().map(|m| (*m).to_owned()).collect();
    };
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

/// The OAuth client credentials an external node obtains its tokens with.
fn oauth(o: &RawOAuthClient, kind: NodeKind, path: &str, errors: &mut Errors) -> OAuthClient {
    if kind != NodeKind::External {
        errors.push(
            format!("{path}.oauth"),
            "only external nodes obtain tokens with OAuth client credentials",
        );
    }
    endpoint_url(&o.token_url, &format!("{path}.oauth.token_url"), errors);
    if o.client_id.is_empty() || o.client_id.len() > 256 {
        errors.push(
            format!("{path}.oauth.client_id"),
            "must be 1-256 characters",
        );
    }
    for (i, sc) in o.scopes.iter().enumerate() {
        if !is_scope_token(sc) {
            errors.push(format!("{path}.oauth.scopes[{i}]"), SCOPE_RULE);
        }
    }
    OAuthClient {
        token_url: o.token_url.clone(),
        client_id: o.client_id.clone(),
        scope: o.scopes.join(" "),
    }
}
