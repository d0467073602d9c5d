//! `[[issuers]]`: the token issuers the proxy trusts, their key sources and accepted `typ` values, and the issuer
//! idguard's own identity service adds for itself.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::BuildContext;
use super::rules::{Errors, resolve};
use crate::defaults;
use crate::files::{MAX_JWKS_FILE_BYTES, read_text_bounded};
use crate::raw::{RawConfig, RawIssuer};
use crate::snapshot::{IdentitySettings, Issuer, KeySource};

const MAX_LEEWAY: u64 = 60;

/// Every valid `[[issuers]]` entry; an issuer declared twice is an error.
pub(super) fn issuers(
    raw: &RawConfig,
    ctx: &BuildContext<'_>,
    errors: &mut Errors,
) -> Vec<Arc<Issuer>> {
    let mut issuers = Vec::new();
    let mut seen = HashSet::new();
    for (i, raw_issuer) in raw.issuers.iter().enumerate() {
        let path = format!("issuers[{i}]");
        if !seen.insert(raw_issuer.issuer.clone()) {
            errors.push(
                format!("{path}.issuer"),
                format!("issuer {:?} is declared twice", raw_issuer.issuer),
            );
        }
        if let Some(issuer) = issuer(raw_issuer, &path, ctx, errors) {
            issuers.push(Arc::new(issuer));
        }
    }
    issuers
}

/// The issuer of idguard's own identity service, trusted with the keys handed over in-process; an error if
/// `[[issuers]]` declares it too.
pub(super) fn own_issuer(
    raw: &RawConfig,
    identity: &IdentitySettings,
    errors: &mut Errors,
) -> Arc<Issuer> {
    if raw.issuers.iter().any(|i| i.issuer == identity.issuer) {
        errors.push(
            "identity.issuer",
            "is also declared in [[issuers]]: idguard trusts its own issuer without one",
        );
    }
    Arc::new(Issuer {
        issuer: identity.issuer.clone(),
        audience: identity.audience.clone(),
        keys: KeySource::Local,
        accepted_typ: vec![defaults::ACCESS_TOKEN_TYP.into()],
        leeway_seconds: defaults::ISSUER_LEEWAY_SECONDS,
        jwks_refresh: Duration::from_secs(defaults::JWKS_REFRESH_SECONDS),
    })
}

/// Reads and parses a JWKS file, checking that it holds at least one key this build can verify with.
///
/// # Errors
/// A message naming what is wrong (unreadable, not a regular file, over [`MAX_JWKS_FILE_BYTES`], not JSON, no
/// usable key).
pub fn read_jwks(path: &Path) -> Result<jsonwebtoken::jwk::JwkSet, String> {
    let text = read_text_bounded(path, MAX_JWKS_FILE_BYTES)
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

fn issuer(
    raw: &RawIssuer,
    path: &str,
    ctx: &BuildContext<'_>,
    errors: &mut Errors,
) -> Option<Issuer> {
    let before = errors.len();
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
    let keys = key_source(raw, path, ctx, errors);
    let accepted_typ = accepted_typ(raw, path, errors);
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
    if errors.len() != before {
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

/// Exactly one of `jwks_file` (readable, holding keys) and `jwks_url` (https).
fn key_source(
    raw: &RawIssuer,
    path: &str,
    ctx: &BuildContext<'_>,
    errors: &mut Errors,
) -> Option<KeySource> {
    match (&raw.jwks_file, &raw.jwks_url) {
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
    }
}

/// The accepted `typ` values, normalized; at least one.
fn accepted_typ(raw: &RawIssuer, path: &str, errors: &mut Errors) -> Vec<String> {
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
    accepted_typ
}
