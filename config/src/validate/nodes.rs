//! `[[credentials]]` and the nodes that inject them: `[[llm]]` and `[[external]]`, each with its upstream, how
//! the credential is injected, the methods it allows and, for external nodes, an OAuth client.

use std::collections::HashMap;
use std::sync::Arc;

use super::BuildContext;
use super::rules::{
    Errors, IdKind, SCOPE_RULE, check_id, endpoint_url, is_header_name, is_scope_token,
    upstream_url,
};
use crate::defaults;
use crate::error::SealError;
use crate::raw::{RawConfig, RawCredential, RawNode, RawOAuthClient};
use crate::seal;
use crate::secret::Secret;
use crate::snapshot::{
    Credential, CredentialUnavailable, InjectStyle, Node, NodeKind, OAuthClient,
};

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
    for (kind, list, section) in [
        (NodeKind::Llm, &raw.llm, "llm"),
        (NodeKind::External, &raw.external, "external"),
    ] {
        for (i, n) in list.iter().enumerate() {
            let path = format!("{section}[{i}]");
            if let Some(node) = node(n, kind, &path, credentials, errors)
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
    if errors.len() != before {
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
        Some(_) => {}
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
    })
}

/// How the credential is injected, with the header or query parameter name the style needs.
fn inject_style(raw: &RawNode, path: &str, errors: &mut Errors) -> Option<InjectStyle> {
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
