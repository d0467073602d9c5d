//! Every environment variable idguard reads. Static bootstrap settings only: the topology never comes from the
//! environment, except a credential value that names its variable (`env = "..."`).

/// The master key as `TERM:BASE64` (or bare `BASE64`, term 1): 32 random bytes, base64 (standard or url-safe).
pub const ENV_MASTER_KEY: &str = "IDGUARD_MASTER_KEY";
/// A file holding master keys, one `TERM:BASE64` per line; the highest term seals, every term opens.
pub const ENV_MASTER_KEY_FILE: &str = "IDGUARD_MASTER_KEY_FILE";
/// The routing file `serve` and `check` read when `--config` is not given.
pub const ENV_CONFIG: &str = "IDGUARD_CONFIG";
/// The log line format, as `--log-format` takes it (`text` or `json`; the binary's `LogFormat` lists them).
pub const ENV_LOG_FORMAT: &str = "IDGUARD_LOG_FORMAT";
/// The data directory `serve`, `check`, `export` and `reseal` use when `--data-dir` is not given.
pub const ENV_DATA_DIR: &str = "IDGUARD_DATA_DIR";
/// `serve`'s runtime worker threads when `--workers` is not given.
pub const ENV_WORKERS: &str = "IDGUARD_WORKERS";
/// The tracing filter (same syntax as `RUST_LOG`), e.g. `info,idguard_proxy=debug`.
pub const ENV_LOG: &str = "IDGUARD_LOG";
/// The admin API's break-glass token; without it one is generated into `<data dir>/admin.token` at first start.
pub const ENV_ADMIN_TOKEN: &str = "IDGUARD_ADMIN_TOKEN";
/// Where browsers reach the admin listener, for the console's sign-in redirect URI and `Secure` cookies
/// (`https://…`); default `http://<admin listener address>` (`https://` with the admin listener's TLS; an
/// unspecified address read as 127.0.0.1).
pub const ENV_CONSOLE_URL: &str = "IDGUARD_CONSOLE_URL";
/// Overrides `[store] redis_url`: share the API-managed topology between replicas through this Redis.
pub const ENV_REDIS_URL: &str = "IDGUARD_REDIS_URL";
/// The ACL username idguard authenticates to Redis with (default: Redis's `default` user).
pub const ENV_REDIS_USERNAME: &str = "IDGUARD_REDIS_USERNAME";
/// The Redis password (of `IDGUARD_REDIS_USERNAME`, or of the `default` user). Never in the routing file.
pub const ENV_REDIS_PASSWORD: &str = "IDGUARD_REDIS_PASSWORD";
/// A file holding the Redis password (trailing newline ignored); read when `IDGUARD_REDIS_PASSWORD` is unset.
pub const ENV_REDIS_PASSWORD_FILE: &str = "IDGUARD_REDIS_PASSWORD_FILE";
