//! `idguard secret new`: a client secret for an agent or client application declared in the routing file, which
//! the admin API cannot give one (it answers 409 `file_managed` for objects the file owns).
//!
//! The file stores a secret only as its keyed hash (HMAC-SHA256 over `client-secret\n<secret>`, 64 hex digits;
//! [`idguard_config::hashes::KeyedHasher`]), so the command must hash under the key the server that reads the file
//! checks with — chosen exactly as `idguard serve` chooses it for the same routing file and environment:
//!
//! - a Redis store (`IDGUARD_REDIS_URL` or `[store] redis_url`) with a master key: the fleet key derived from the
//!   master key and the store's prefix ([`idguard_config::hashes::fleet_client_secret_hex`]); Redis is not
//!   contacted;
//! - a Redis store without a master key: the random key kept in that Redis (read, or created as `serve` would);
//! - otherwise the embedded store's `fingerprint.key` in the data directory (`--data-dir`, default `idguard-data`
//!   beside the routing file), created (0600, in a 0700 directory) when no server has made it yet.
//!
//! The secret is printed once (or written to a new 0600 file); the file is never edited: the command prints the
//! line to paste.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::{Args, Subcommand, ValueEnum};
use idguard_config::Loader;
use idguard_config::hashes::KeyedHasher;
use idguard_config::raw::{RawClientSecret, RawConfig};
use zeroize::Zeroizing;

use crate::serve::{Environment, default_data_dir};

/// `idguard secret`.
#[derive(Debug, Args)]
pub struct SecretArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SecretCommand,
}

/// The `secret` subcommands.
#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Make a client secret for an agent (or client application) declared in the routing file: print the secret
    /// once and the `secrets = [...]` line to paste into its entry. The hash is keyed like the server that reads
    /// the file: the embedded store's key in the data directory, or with Redis the fleet key derived from the
    /// master key (IDGUARD_MASTER_KEY / IDGUARD_MASTER_KEY_FILE).
    New(NewSecret),
}

/// `idguard secret new`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("principal").required(true).args(["agent", "client"])))]
pub struct NewSecret {
    /// The agent (`[[agents]] id`) the secret is for.
    #[arg(long)]
    pub agent: Option<String>,
    /// Or the client application (`[[clients]] id`) the secret is for.
    #[arg(long)]
    pub client: Option<String>,
    /// The routing file that declares it (TOML).
    #[arg(long, short, env = "IDGUARD_CONFIG")]
    pub config: PathBuf,
    /// The data directory of the server that reads the file (default: `idguard-data` beside the config); its
    /// `fingerprint.key` keys the hash unless the store is Redis.
    #[arg(long, env = "IDGUARD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The secret's id in the file (default: a fresh `sec-…`).
    #[arg(long)]
    pub id: Option<String>,
    /// Write the secret to this new file (mode 0600) instead of printing it.
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// `text` for people; `json` (`client_id`, `secret_id`, `secret`, `hash`, `toml`) for scripts.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Instructions for people.
    Text,
    /// One JSON object.
    Json,
}

/// What the secret is for, as found in the file.
struct Principal<'a> {
    /// `agent` or `client`.
    kind: &'static str,
    id: &'a str,
    /// Its `[[agents]]`/`[[clients]]` path, e.g. `agents[0]`, for the line it starts on.
    path: String,
    existing: &'a [RawClientSecret],
}

/// Runs `idguard secret`.
///
/// # Errors
/// The file cannot be read, does not declare the principal (or declares it with `private_key_jwt`), the key
/// cannot be had, or the secret cannot be written.
pub fn run(args: SecretArgs, env: Environment) -> anyhow::Result<ExitCode> {
    match args.command {
        SecretCommand::New(new) => new_secret(new, env),
    }
}

fn new_secret(args: NewSecret, env: Environment) -> anyhow::Result<ExitCode> {
    let loader = Loader::new(&args.config, None);
    let raw = loader.file_raw()?;
    let principal = find(&raw, &args)?;
    if let Some(id) = &args.id
        && principal.existing.iter().any(|s| &s.id == id)
    {
        anyhow::bail!(
            "--id {id:?}: {} {:?} already has a secret with that id in {}",
            principal.kind,
            principal.id,
            args.config.display()
        );
    }
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| default_data_dir(&args.config));
    let (hasher, keyed_by) = hasher(&args.config, &raw, &data_dir, env)?;

    let secret = Zeroizing::new(format!("idgsec_{}", URL_SAFE_NO_PAD.encode(random::<32>())));
    let secret_id = args
        .id
        .clone()
        .unwrap_or_else(|| format!("sec-{}", hex(&random::<6>())));
    let hash = hasher.client_secret_hex(&secret);
    let entry = format!("{{ id = {}, hash = \"{hash}\" }}", toml_string(&secret_id));
    let toml = if principal.existing.is_empty() {
        format!("secrets = [{entry}]")
    } else {
        entry
    };
    if let Some(file) = &args.secret_file {
        write_new_private(file, &secret)
            .with_context(|| format!("--secret-file {}", file.display()))?;
    }
    let text = std::fs::read_to_string(&args.config).unwrap_or_default();
    let line = idguard_config::reload::locate(&text, &principal.path);
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Json => {
            let mut v = serde_json::json!({
                "client_id": principal.id,
                "secret_id": secret_id,
                "hash": hash,
                "toml": toml,
                "keyed_by": keyed_by,
            });
            if args.secret_file.is_none() {
                v["secret"] = serde_json::Value::String(secret.to_string());
            }
            writeln!(out, "{v}")?;
        }
        Format::Text => {
            match &args.secret_file {
                Some(file) => writeln!(
                    out,
                    "client secret for {} {:?} written to {} (mode 0600); it is not kept anywhere else",
                    principal.kind,
                    principal.id,
                    file.display()
                )?,
                None => writeln!(
                    out,
                    "client secret for {} {:?} (shown only this once; give it to the {} now):\n{}",
                    principal.kind,
                    principal.id,
                    principal.kind,
                    secret.as_str()
                )?,
            }
            let at = line.map_or_else(String::new, |l| format!(", line {l}"));
            if principal.existing.is_empty() {
                writeln!(
                    out,
                    "\nPaste this line into its entry in {} (id = {:?}{at}):\n{toml}",
                    args.config.display(),
                    principal.id
                )?;
            } else {
                writeln!(
                    out,
                    "\nAdd this to the `secrets` array of its entry in {} (id = {:?}{at}):\n{toml}",
                    args.config.display(),
                    principal.id
                )?;
            }
            writeln!(
                out,
                "\nThe hash is keyed with {keyed_by}: it matches only a server using that key. The running \
                 server picks the change up at its next reload (file watch or SIGHUP)."
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The agent or client the arguments name, as the file declares it.
fn find<'a>(raw: &'a RawConfig, args: &'a NewSecret) -> anyhow::Result<Principal<'a>> {
    let file = args.config.display();
    let (kind, id, found, auth) = if let Some(id) = &args.agent {
        let found = raw.agents.iter().position(|a| &a.id == id);
        let auth = found.and_then(|i| raw.agents[i].auth.as_deref());
        ("agent", id.as_str(), found, auth)
    } else if let Some(id) = &args.client {
        let found = raw.clients.iter().position(|c| &c.id == id);
        let auth = found.and_then(|i| raw.clients[i].auth.as_deref());
        ("client", id.as_str(), found, auth)
    } else {
        anyhow::bail!("name the principal with --agent ID or --client ID");
    };
    let Some(index) = found else {
        anyhow::bail!(
            "{kind} {id:?} is not declared in {file}: add its [[{kind}s]] entry first (an {kind} created \
             through the admin API gets secrets there instead: `idguard admin {kind}s secrets create {id}`)"
        );
    };
    if auth == Some("private_key_jwt") {
        anyhow::bail!(
            "{kind} {id:?} authenticates with private_key_jwt (auth = \"private_key_jwt\" in {file}): the token \
             endpoint would refuse a client secret; register a public key in its `keys` instead"
        );
    }
    let (path, existing) = match kind {
        "agent" => (
            format!("agents[{index}]"),
            raw.agents[index].secrets.as_slice(),
        ),
        _ => (
            format!("clients[{index}]"),
            raw.clients[index].secrets.as_slice(),
        ),
    };
    Ok(Principal {
        kind,
        id,
        path,
        existing,
    })
}

/// The hasher `serve` would check client secrets with for this file and environment, and a description of its
/// key for the message (never the key, nor the Redis URL).
fn hasher(
    config: &Path,
    raw: &RawConfig,
    data_dir: &Path,
    env: Environment,
) -> anyhow::Result<(KeyedHasher, String)> {
    let redis_url = env
        .redis_url
        .clone()
        .or_else(|| raw.store.redis_url.clone());
    let prefix = raw
        .store
        .redis_prefix
        .as_deref()
        .unwrap_or(idguard_config::defaults::REDIS_PREFIX);
    match (redis_url, env.master_keys) {
        (Some(_), Some(master)) => {
            let key = idguard_config::hashes::fleet_key(
                &master,
                prefix,
                idguard_config::hashes::FINGERPRINT_KEY_NAME,
            )?;
            Ok((
                KeyedHasher::new(&key),
                format!(
                    "the fleet key derived from the master key for the Redis store under prefix {prefix:?}"
                ),
            ))
        }
        (Some(url), None) => {
            let store = crate::serve::open_redis(
                config,
                Some(&raw.store),
                &url,
                (env.redis_username, env.redis_password),
                data_dir,
            )?;
            let key = store
                .fingerprint_key()
                .map_err(|e| anyhow::anyhow!("reading the fingerprint key kept in Redis: {e}"))?;
            Ok((
                KeyedHasher::new(&key),
                format!(
                    "the fingerprint key kept in the Redis store under prefix {prefix:?} (no master key is set; \
                     with one, replicas derive it instead and this hash would not match)"
                ),
            ))
        }
        (None, _) => {
            idguard_admin::store::create_private_dir(data_dir)
                .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
            let key = idguard_admin::auth::load_or_create_key(data_dir, "fingerprint.key")
                .with_context(|| {
                    format!("reading {}", data_dir.join("fingerprint.key").display())
                })?;
            Ok((
                KeyedHasher::new(&key),
                format!(
                    "{} (the embedded store's key; serve with this data directory)",
                    data_dir.join("fingerprint.key").display()
                ),
            ))
        }
    }
}

/// Writes `value` to `path`, which must not exist yet, readable by its owner only.
fn write_new_private(path: &Path, value: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(value.as_bytes())?;
    file.write_all(b"\n")
}

/// `value` as a TOML basic string: JSON's escapes (`\"`, `\\`, `\n`, `\uXXXX`, …) are all TOML's too.
pub(crate) fn toml_string(value: &str) -> String {
    serde_json::Value::String(value.to_owned()).to_string()
}

pub(crate) fn random<const N: usize>() -> [u8; N] {
    use rand::RngCore as _;
    let mut out = [0u8; N];
    rand::rng().fill_bytes(&mut out);
    out
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_round_trip() {
        for s in ["sec-1", "with \"quotes\" and \\", "tab\tnew\nline", "é"] {
            let doc: toml::Value = toml::from_str(&format!("v = {}", toml_string(s))).unwrap();
            assert_eq!(doc["v"].as_str(), Some(s));
        }
    }
}
