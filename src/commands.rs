//! The one-shot subcommands: `check`, `export`, `reseal` and `seal`. Each returns the process exit code; `anyhow` errors
//! are for the binary to print.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use idguard_admin::store::EmbeddedStore;
use idguard_config::seal::inspect;
use idguard_config::store::Store;
use idguard_config::{ConfigError, Loader, MasterKeys};
use zeroize::Zeroizing;

use crate::serve::{Environment, default_data_dir};

/// `idguard check`: every error with its location; exit 1 if there is any. With `data_dir`, the file is judged
/// together with what the admin API stored — the store `serve` would use (Redis from `IDGUARD_REDIS_URL` or
/// `[store] redis_url`, read-only; else the embedded store in `data_dir`) — by the same merge a reload does, so a
/// file `check` accepts is one the live reload accepts. Errors in stored objects name them by id
/// (`llm[id=gpt].style`).
///
/// # Errors
/// With `data_dir`: the routing file cannot be read for its `[store]` table, or the store cannot be opened or
/// read.
pub fn check(path: &Path, data_dir: Option<PathBuf>, env: Environment) -> anyhow::Result<ExitCode> {
    let has_keys = env.master_keys.is_some();
    let mut loader = Loader::new(path, env.master_keys.clone());
    let mut source = None;
    if let Some(data_dir) = data_dir {
        let raw = match loader.file_raw() {
            Ok(raw) => raw,
            Err(e) => {
                println!("{e}");
                return Ok(ExitCode::from(1));
            }
        };
        let (what, store) = open_store(path, &raw, env, &data_dir, Purpose::Check)?;
        if let Some(store) = store {
            loader = loader.with_store(std::sync::Arc::from(store));
        }
        source = Some(what);
    }
    if let Some(what) = &source {
        println!("{}: checked together with {what}", path.display());
    }
    match loader.load(1) {
        Ok((snapshot, _)) => {
            let problems = snapshot.credential_problems();
            // Without any master key, unopenable sealed values are expected: say so once, not per credential.
            let only_keyless = !has_keys && snapshot.unopened_only_for_lack_of_key();
            if !problems.is_empty() && !only_keyless {
                for p in &problems {
                    println!("{}: {p}", path.display());
                }
                println!("{}: {} error(s)", path.display(), problems.len());
                return Ok(ExitCode::from(1));
            }
            println!(
                "{}: ok ({}, {}, {}, {}, {}){}",
                path.display(),
                count(snapshot.issuers.len(), "issuer"),
                count(snapshot.agents.len(), "agent"),
                count(snapshot.nodes.len(), "node"),
                count(snapshot.credentials.len(), "credential"),
                count(
                    snapshot.edges.values().map(|m| m.len()).sum::<usize>(),
                    "outbound authorization"
                ),
                if problems.is_empty() {
                    ""
                } else {
                    "; sealed values not checked: no master key set"
                }
            );
            warn_over_quota(path, &snapshot);
            Ok(ExitCode::SUCCESS)
        }
        Err(ConfigError::Invalid(errors)) => {
            for e in &errors.0 {
                println!("{}: {e}", path.display());
            }
            println!("{}: {} error(s)", path.display(), errors.0.len());
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            println!("{e}");
            Ok(ExitCode::from(1))
        }
    }
}

/// `n` and `noun`, the noun in the plural unless `n` is 1: "1 issuer", "2 issuers", "0 issuers".
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Warns (without failing the check) when the routing file alone already exceeds a console quota: the server
/// serves it, but the admin API refuses every create of that kind until the quota is raised.
fn warn_over_quota(path: &Path, snapshot: &idguard_config::Snapshot) {
    let usage = idguard_admin::usage::Usage::of(snapshot);
    if usage.licensed() > usage.licenses {
        println!(
            "{}: warning: {} agents, clients and enterprise services need {} M2M application licenses, \
             more than store.m2m_licenses = {}",
            path.display(),
            usage.licensed(),
            usage.licensed(),
            usage.licenses
        );
    }
    if usage.credentials > usage.max_credentials {
        println!(
            "{}: warning: {} credentials, more than store.max_credentials = {}",
            path.display(),
            usage.credentials,
            usage.max_credentials
        );
    }
}

/// `idguard export`: the routing file plus every API-managed object, as one routing file. The store is the one
/// `serve` would use: Redis (from `IDGUARD_REDIS_URL` or `[store] redis_url`), read live in one atomic `MULTI` so
/// the objects are those of one topology version while the fleet keeps serving and writing; else the embedded
/// store, which must not be open in a running server.
///
/// # Errors
/// The file or the store cannot be read, or the output cannot be written.
pub fn export(
    path: &Path,
    data_dir: Option<PathBuf>,
    output: Option<&Path>,
    env: Environment,
) -> anyhow::Result<ExitCode> {
    let data_dir = data_dir.unwrap_or_else(|| default_data_dir(path));
    let raw = Loader::new(path, None).file_raw()?;
    let (source, store) = open_store(path, &raw, env, &data_dir, Purpose::Export)?;
    let (version, objects) = match store {
        Some(store) => store.load().context("reading the store")?,
        None => (0, Vec::new()),
    };
    let text = format!(
        "# Written by `idguard export` from {} and {source} (topology version {version}, {} API-managed objects).\n\n{}",
        path.display(),
        objects.len(),
        idguard_config::store::export(raw, &objects)?
    );
    match output {
        Some(out) => {
            std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// What a command opens the store for: `check` and `export` only read it, `reseal` writes.
#[derive(Clone, Copy)]
enum Purpose {
    Check,
    Export,
    Reseal,
}

/// The store `serve` would open for this routing file and data directory, and a description of it for messages
/// (never the Redis URL, which may hold a password): Redis when `redis_url` (the environment) or the file's
/// `[store] redis_url` names one; the embedded store when its database exists; else none (nothing was ever
/// stored, and none is created just to find that out). `command` names the caller in the embedded store's
/// "stop the server first" hint.
fn open_store(
    path: &Path,
    raw: &idguard_config::raw::RawConfig,
    env: Environment,
    data_dir: &Path,
    purpose: Purpose,
) -> anyhow::Result<(String, Option<Box<dyn Store>>)> {
    let command = match purpose {
        Purpose::Check => "check",
        Purpose::Export => "export",
        Purpose::Reseal => "reseal",
    };
    match env.redis_url.or_else(|| raw.store.redis_url.clone()) {
        Some(url) => {
            let prefix = raw
                .store
                .redis_prefix
                .as_deref()
                .unwrap_or(idguard_config::defaults::REDIS_PREFIX);
            let store = crate::serve::open_redis(
                path,
                Some(&raw.store),
                &url,
                (env.redis_username, env.redis_password),
                data_dir,
            )?;
            let store = match purpose {
                Purpose::Check | Purpose::Export => store.read_only(),
                Purpose::Reseal => store,
            };
            Ok((
                format!("the Redis store under prefix {prefix:?}"),
                Some(Box::new(store)),
            ))
        }
        None if !data_dir.join("topology.redb").exists() => {
            Ok((format!("no store (none in {})", data_dir.display()), None))
        }
        None => {
            let store = EmbeddedStore::open(data_dir).with_context(|| {
                format!(
                    "opening the store in {} (is a server using it? stop it first, or {command} a copy of the \
                     data directory; a Redis store can be used live)",
                    data_dir.display()
                )
            })?;
            Ok((
                format!("the store in {}", data_dir.display()),
                Some(Box::new(store)),
            ))
        }
    }
}

/// `idguard reseal`: every credential in the store (embedded, or Redis from `IDGUARD_REDIS_URL` or
/// `[store] redis_url`) re-wrapped under the newest master-key term, one versioned, audited commit each; then the
/// routing file's own credentials on an older term, which only the operator can re-seal. Exit 1 when a stored
/// credential could not be re-wrapped.
///
/// # Errors
/// No master key, an unreadable routing file, or a store that cannot be opened, read or written.
pub fn reseal(
    path: &Path,
    data_dir: Option<PathBuf>,
    env: Environment,
) -> anyhow::Result<ExitCode> {
    let keys = env.master_keys.clone().context(
        "set IDGUARD_MASTER_KEY or IDGUARD_MASTER_KEY_FILE: reseal re-wraps under its newest term",
    )?;
    let data_dir = data_dir.unwrap_or_else(|| default_data_dir(path));
    let raw = Loader::new(path, None).file_raw()?;
    let (_, store) = open_store(path, &raw, env, &data_dir, Purpose::Reseal)?;
    let report = match store {
        Some(store) => idguard_admin::reseal::reseal(&*store, &keys, "reseal")
            .context("re-wrapping the stored credentials")?,
        None => idguard_admin::reseal::Report {
            term: keys.current_term(),
            ..Default::default()
        },
    };
    for (id, why) in &report.failed {
        println!("stored credential {id:?} was not re-wrapped: {why}");
    }
    println!(
        "re-wrapped {} stored credential(s) under master-key term {}; left {} already on it",
        report.rewrapped.len(),
        report.term,
        report.left.len()
    );
    let in_file: Vec<&str> = raw
        .credentials
        .iter()
        .filter(|c| {
            c.sealed
                .as_deref()
                .is_some_and(|s| inspect(s) != Ok(report.term))
        })
        .map(|c| c.id.as_str())
        .collect();
    for id in &in_file {
        println!(
            "{}: credential {id:?} is sealed under an older term: re-seal it with \
             `idguard seal --id {id}` and replace its `sealed` value (reseal does not rewrite the routing file)",
            path.display()
        );
    }
    Ok(if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `idguard seal`: a fresh master key, or a value from standard input sealed for credential `id`.
///
/// # Errors
/// No master key, no `--id`, or empty input.
pub fn seal(id: Option<&str>, new_key: bool, env: Environment) -> anyhow::Result<ExitCode> {
    if new_key {
        println!("{}", MasterKeys::generate_encoded().as_str());
        return Ok(ExitCode::SUCCESS);
    }
    let id = id.context("--id is required")?;
    let keys = env.master_keys.context(
        "set IDGUARD_MASTER_KEY or IDGUARD_MASTER_KEY_FILE (idguard seal --new-key makes one)",
    )?;
    let value = read_value(
        id,
        &mut std::io::stdin().lock(),
        std::io::stdin().is_terminal(),
    )?;
    let trimmed = value.trim_end_matches(['\r', '\n']);
    if trimmed.is_empty() {
        anyhow::bail!(
            "standard input was empty: pipe the secret in, e.g. `printf %s \"$KEY\" | idguard seal --id ID`"
        );
    }
    println!("{}", keys.seal(id, trimmed.as_bytes())?);
    Ok(ExitCode::SUCCESS)
}

/// The value to seal for credential `id`. From a pipe or a file: everything until end of input. From a
/// terminal: one line, after a prompt on standard error (standard output is for the sealed value alone), so
/// `seal` never waits silently for input nobody knows it wants.
fn read_value(
    id: &str,
    input: &mut impl std::io::BufRead,
    terminal: bool,
) -> anyhow::Result<Zeroizing<String>> {
    let mut value = Zeroizing::new(String::new());
    if terminal {
        eprint!(
            "Value for credential {id:?} (one line; it shows as you type — to keep it off the screen, pipe it in: \
             printf %s \"$KEY\" | idguard seal --id {id}): "
        );
        let _ = std::io::stderr().flush();
        input
            .read_line(&mut value)
            .context("reading the value from the terminal")?;
    } else {
        input
            .read_to_string(&mut value)
            .context("reading the value from standard input")?;
    }
    Ok(value)
}
