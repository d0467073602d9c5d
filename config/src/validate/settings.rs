//! The settings sections: `[listeners]` (with TLS), `[limits]`, `[upstream]`, `[reload]`, `[tokens]`, `[store]`,
//! `[admin]`, and `[identity]`. Every number is checked against its range; its default stands beside the range.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::BuildContext;
use super::rules::{AUDIENCE_RULE, Errors, is_audience, resolve};
use crate::defaults;
use crate::raw::{RawAdminTls, RawConfig, RawIdentity, RawLimits, RawStore, RawTls, RawUpstream};
use crate::snapshot::{
    AdminTls, ClientCertAuth, IdentitySettings, Limits, RedisConnection, Settings, TlsFiles,
    UpstreamSettings,
};

/// The `[identity] issuer` value that asks for the issuer to be derived from the public listener.
pub(super) const AUTO_ISSUER: &str = "auto";

/// The settings, or `None` when a listener address is invalid (an error was recorded).
pub(super) fn settings(
    raw: &RawConfig,
    ctx: &BuildContext<'_>,
    errors: &mut Errors,
) -> Option<Settings> {
    let public_addr = addr(
        raw.listeners.public.as_deref(),
        defaults::PUBLIC_ADDR,
        "listeners.public",
        errors,
    );
    let admin_addr = addr(
        raw.listeners.admin.as_deref(),
        defaults::ADMIN_ADDR,
        "listeners.admin",
        errors,
    );
    let tls = raw.listeners.tls.as_ref().map(|t| tls(t, ctx, errors));
    let admin_tls = raw
        .listeners
        .admin_tls
        .as_ref()
        .map(|t| admin_tls(t, ctx, errors));
    let limits = limits(&raw.limits, errors);
    let upstream = upstream(&raw.upstream, ctx, errors);
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
    let audit_stream_max_len = bounded(
        raw.store.audit_stream_max_len,
        defaults::AUDIT_STREAM_MAX_LEN,
        1,
        100_000_000,
        "store.audit_stream_max_len",
        errors,
    );
    Some(Settings {
        public_addr: public_addr?,
        admin_addr: admin_addr?,
        tls,
        admin_tls,
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
        audit_stream_max_len,
        redis_connection: redis_connection(&raw.store, &ctx.base_dir, errors),
    })
}

/// Where a Redis password belongs instead of the routing file.
const REDIS_PASSWORD_RULE: &str = "the Redis password is never read from the routing file: set IDGUARD_REDIS_PASSWORD or IDGUARD_REDIS_PASSWORD_FILE (and IDGUARD_REDIS_USERNAME for an ACL user)";

/// `[store]`'s connection settings (relative files resolved against `base_dir`). Refuses a password in the
/// file, in `redis_password` or inside `redis_url`; the messages never repeat the URL or the password.
pub(super) fn redis_connection(
    raw: &RawStore,
    base_dir: &Path,
    errors: &mut Errors,
) -> RedisConnection {
    if raw.redis_password.is_some() {
        errors.push("store.redis_password", REDIS_PASSWORD_RULE);
    }
    if let Some(url) = &raw.redis_url
        && url.split(',').any(url_has_password)
    {
        errors.push(
            "store.redis_url",
            format!("must not carry a password; {REDIS_PASSWORD_RULE}"),
        );
    }
    let file = |p: &Option<PathBuf>, path: &str, errors: &mut Errors| {
        p.as_ref().map(|p| {
            let file = resolve(base_dir, p);
            if !file.is_file() {
                errors.push(path, format!("{} is not a readable file", file.display()));
            }
            file
        })
    };
    let ca_file = file(&raw.redis_ca_file, "store.redis_ca_file", errors);
    let cert = file(
        &raw.redis_client_cert_file,
        "store.redis_client_cert_file",
        errors,
    );
    let key = file(
        &raw.redis_client_key_file,
        "store.redis_client_key_file",
        errors,
    );
    let client_cert = match (cert, key) {
        (Some(cert_file), Some(key_file)) => Some(TlsFiles {
            cert_file,
            key_file,
        }),
        (None, None) => None,
        (Some(_), None) => {
            errors.push(
                "store.redis_client_key_file",
                "must be set with redis_client_cert_file",
            );
            None
        }
        (None, Some(_)) => {
            errors.push(
                "store.redis_client_cert_file",
                "must be set with redis_client_key_file",
            );
            None
        }
    };
    let ms = |v: Option<u64>, path: &str, errors: &mut Errors| {
        Duration::from_millis(bounded(v, 500, 50, 60_000, path, errors))
    };
    RedisConnection {
        cluster: raw.redis_cluster.unwrap_or(false),
        ca_file,
        client_cert,
        connect_timeout: ms(
            raw.redis_connect_timeout_ms,
            "store.redis_connect_timeout_ms",
            errors,
        ),
        response_timeout: ms(
            raw.redis_response_timeout_ms,
            "store.redis_response_timeout_ms",
            errors,
        ),
    }
}

/// Whether a Redis URL's authority carries `user:password@` (or `:password@`).
pub fn url_has_password(url: &str) -> bool {
    let rest = url.trim().split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// `[identity]`: idguard's own authorization server, or `None` when any of its fields is invalid. `public` is the
/// public listener — the bound address when the context knows it, else `[listeners] public` — and whether it
/// serves TLS; an omitted or `"auto"` issuer is derived from it.
pub(super) fn identity(
    raw: &RawIdentity,
    public: Option<(SocketAddr, bool)>,
    errors: &mut Errors,
) -> Option<IdentitySettings> {
    let before = errors.len();
    let written = raw
        .issuer
        .as_deref()
        .map(str::trim)
        .filter(|i| *i != AUTO_ISSUER);
    let issuer = match (written, public) {
        (Some(written), _) => written.trim_end_matches('/').to_owned(),
        (None, Some((addr, tls))) if !addr.ip().is_unspecified() => {
            format!("{}://{addr}", if tls { "https" } else { "http" })
        }
        (None, Some((addr, _))) => {
            errors.push(
                "identity.issuer",
                format!(
                    "is omitted or \"auto\", which derives it from the public listener, but {addr} is every \
                     address, not one clients reach; set issuer to the URL agents reach idguard at"
                ),
            );
            return None;
        }
        // The listener address is invalid: that error is already recorded.
        (None, None) => return None,
    };
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
    if !is_audience(&audience) {
        errors.push("identity.audience", AUDIENCE_RULE);
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
    let max_assertion_lifetime = bounded(
        raw.max_assertion_lifetime_seconds,
        defaults::MAX_ASSERTION_LIFETIME_SECONDS,
        60,
        86_400,
        "identity.max_assertion_lifetime_seconds",
        errors,
    );
    if errors.len() != before {
        return None;
    }
    Some(IdentitySettings {
        issuer,
        issuer_derived: written.is_none(),
        audience,
        access_token_ttl: Duration::from_secs(access_token_ttl),
        exchange_max_ttl: Duration::from_secs(exchange_max_ttl),
        key_rotation: Duration::from_secs(rotation),
        accept_token_endpoint_audience: raw.accept_token_endpoint_audience.unwrap_or(true),
        max_assertion_lifetime: Duration::from_secs(max_assertion_lifetime),
        max_failed_auth_per_minute: max_failed,
        max_act_depth,
    })
}

fn addr(value: Option<&str>, default: &str, path: &str, errors: &mut Errors) -> Option<SocketAddr> {
    let text = value.unwrap_or(default);
    text.parse::<SocketAddr>()
        .map_err(|_| {
            errors.push(
                path,
                format!("{text:?} is not an address like 127.0.0.1:8080"),
            )
        })
        .ok()
}

fn tls(raw: &RawTls, ctx: &BuildContext<'_>, errors: &mut Errors) -> TlsFiles {
    TlsFiles {
        cert_file: readable_file(ctx, &raw.cert_file, "listeners.tls.cert_file", errors),
        key_file: readable_file(ctx, &raw.key_file, "listeners.tls.key_file", errors),
    }
}

fn admin_tls(raw: &RawAdminTls, ctx: &BuildContext<'_>, errors: &mut Errors) -> AdminTls {
    const AT: &str = "listeners.admin_tls";
    let client_ca_file = raw
        .client_ca_file
        .as_ref()
        .map(|f| readable_file(ctx, f, &format!("{AT}.client_ca_file"), errors));
    if raw.client_auth.is_some() && client_ca_file.is_none() {
        errors.push(
            format!("{AT}.client_auth"),
            "needs client_ca_file: the CA operators' client certificates must chain to",
        );
    }
    AdminTls {
        files: TlsFiles {
            cert_file: readable_file(ctx, &raw.cert_file, &format!("{AT}.cert_file"), errors),
            key_file: readable_file(ctx, &raw.key_file, &format!("{AT}.key_file"), errors),
        },
        client_ca_file,
        client_auth: raw.client_auth.unwrap_or(ClientCertAuth::Required),
    }
}

fn limits(l: &RawLimits, errors: &mut Errors) -> Limits {
    let ms = |v: Option<u64>, default: u64, max: u64, path: &str, errors: &mut Errors| {
        Duration::from_millis(bounded(v, default, 100, max, path, errors))
    };
    Limits {
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
        first_bytes_timeout: ms(
            l.first_bytes_timeout_ms,
            10_000,
            600_000,
            "limits.first_bytes_timeout_ms",
            errors,
        ),
        http2_idle_timeout: ms(
            l.http2_idle_timeout_ms,
            60_000,
            86_400_000,
            "limits.http2_idle_timeout_ms",
            errors,
        ),
        http2_keepalive_interval: ms(
            l.http2_keepalive_interval_ms,
            30_000,
            3_600_000,
            "limits.http2_keepalive_interval_ms",
            errors,
        ),
        http2_keepalive_timeout: ms(
            l.http2_keepalive_timeout_ms,
            20_000,
            600_000,
            "limits.http2_keepalive_timeout_ms",
            errors,
        ),
        body_idle_timeout: ms(
            l.body_idle_timeout_ms,
            30_000,
            3_600_000,
            "limits.body_idle_timeout_ms",
            errors,
        ),
        max_connections: bounded(
            l.max_connections,
            10_000,
            1,
            1_000_000,
            "limits.max_connections",
            errors,
        ),
        max_connections_per_ip: bounded(
            l.max_connections_per_ip,
            1_000,
            0,
            1_000_000,
            "limits.max_connections_per_ip",
            errors,
        ),
    }
}

fn upstream(u: &RawUpstream, ctx: &BuildContext<'_>, errors: &mut Errors) -> UpstreamSettings {
    let ms = |v: Option<u64>, default: u64, path: &str, errors: &mut Errors| {
        Duration::from_millis(bounded(v, default, 1, 3_600_000, path, errors))
    };
    UpstreamSettings {
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
        extra_ca_file: u
            .extra_ca_file
            .as_ref()
            .map(|p| readable_file(ctx, p, "upstream.extra_ca_file", errors)),
    }
}

/// `p` resolved against the file's directory; an error at `path` unless it names a readable file.
fn readable_file(ctx: &BuildContext<'_>, p: &Path, path: &str, errors: &mut Errors) -> PathBuf {
    let file = resolve(&ctx.base_dir, p);
    if !file.is_file() {
        errors.push(path, format!("{} is not a readable file", file.display()));
    }
    file
}

/// `value` (or `default`) when it lies in `min..=max`; otherwise an error at `path`, and `default`.
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
