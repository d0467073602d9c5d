//! `idguard init DIR`: a working starting point in a new directory — a master key file (0600) and a routing file
//! with idguard's own identity service as the one issuer, one agent, one LLM node whose API key (read from
//! standard input, or asked for on a terminal without echo) is sealed under that master key, and the edge between
//! them. `idguard check` accepts it and `idguard serve` runs it as written; an existing file is never overwritten.

mod prompt;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use idguard_config::{ConfigError, Loader, MasterKeys};

use crate::secret::toml_string;

/// The routing file's name in DIR.
pub const CONFIG_FILE: &str = "idguard.toml";
/// The master key file's name in DIR.
pub const KEY_FILE: &str = "master.key";

/// `idguard init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The directory to write `idguard.toml` and `master.key` into (created if missing; existing files are never
    /// overwritten).
    pub dir: PathBuf,
    /// The agent's id.
    #[arg(long, default_value = "my-agent")]
    pub agent: String,
    /// The LLM node's id: agents reach it at /llm/ID/.
    #[arg(long, default_value = "openai")]
    pub llm: String,
    /// The LLM's upstream base URL (https, or http to a loopback host).
    #[arg(long, default_value = "https://api.openai.com")]
    pub upstream: String,
    /// How the key is injected: bearer, anthropic, azure, gemini (docs/configuration.md).
    #[arg(long, default_value = "bearer")]
    pub style: String,
    /// The public listener, written as `listeners.public`; the identity service's issuer is `http://` and it.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The admin listener, written as `listeners.admin`.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,
}

/// Runs `idguard init`: refuses before writing anything if either file exists, reads the LLM key, writes both
/// files, and checks the result the way `idguard check` does (removing what it wrote if that fails).
///
/// # Errors
/// An existing file, no key on standard input, a directory that cannot be written, or a result that does not
/// validate (a bad `--upstream` or `--style`, reported with its field).
pub fn run(args: InitArgs) -> anyhow::Result<ExitCode> {
    let config = args.dir.join(CONFIG_FILE);
    let key_file = args.dir.join(KEY_FILE);
    for path in [&config, &key_file] {
        if path.exists() {
            anyhow::bail!(
                "{} already exists: init never overwrites a file; choose another directory or move it away",
                path.display()
            );
        }
    }
    let credential = format!("{}-key", args.llm);
    let api_key = prompt::secret(&format!(
        "API key for the LLM node {:?} ({})",
        args.llm, args.upstream
    ))?;

    let encoded = MasterKeys::generate_encoded();
    let master = MasterKeys::parse(&encoded)?;
    let sealed = master.seal(&credential, api_key.as_bytes())?;
    let text = routing_file(&args, &credential, &sealed);

    idguard_admin::store::create_private_dir(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    write_new(&key_file, &format!("{}\n", encoded.as_str()), 0o600)?;
    if let Err(e) = write_new(&config, &text, 0o644) {
        let _ = std::fs::remove_file(&key_file);
        return Err(e);
    }
    let master = MasterKeys::from_file(&key_file)?;
    if let Err(problems) = check(&config, master) {
        let _ = std::fs::remove_file(&config);
        let _ = std::fs::remove_file(&key_file);
        anyhow::bail!(
            "the options do not make a valid routing file (nothing was kept):\n{problems}"
        );
    }
    print_next_steps(&args, &config, &key_file);
    Ok(ExitCode::SUCCESS)
}

/// The routing file `init` writes.
fn routing_file(args: &InitArgs, credential: &str, sealed: &str) -> String {
    let agent = toml_string(&args.agent);
    let llm = toml_string(&args.llm);
    let credential_q = toml_string(credential);
    format!(
        r#"# Written by `idguard init`. Every field is documented in docs/configuration.md.
# Serve it with the master key beside it (relative paths in this file are relative to this file's directory):
#   IDGUARD_MASTER_KEY_FILE={key} idguard serve --config {config}

[listeners]
public = "{public}"   # agents call this: the proxy and the identity service
admin = "{admin}"     # the admin API, console, /metrics, /healthz, /readyz: keep it on loopback

# idguard's own identity service: agents get tokens at <issuer>/oauth2/token and the proxy trusts them. It is the
# one issuer this file needs; add [[issuers]] only to also accept tokens from an outside provider.
[identity]
issuer = "http://{public}"
# access_token_ttl_seconds = 900

[[agents]]
id = {agent}
name = "My agent"
# token_ttl_seconds = 900        # this agent's own tokens (60 to 86400 seconds)
# Give it a client secret:  idguard secret new --agent {agent_arg} --config {config}
# and paste the line that prints here.

# The LLM's API key, sealed under {key_name} (re-seal: printf %s "$KEY" | idguard seal --id {credential_arg}).
[[credentials]]
id = {credential_q}
kind = "llm"
sealed = "{sealed}"

# Agents use it as their SDK's base URL: http://{public}/llm/{llm_arg}/ (e.g. .../v1 for OpenAI).
[[llm]]
id = {llm}
upstream = {upstream}
style = {style}
credential = {credential_q}

# The agent may call the LLM.
[[outbound]]
agent = {agent}
node = {llm}
"#,
        key = args.dir.join(KEY_FILE).display(),
        config = args.dir.join(CONFIG_FILE).display(),
        public = args.listen,
        admin = args.admin_listen,
        agent_arg = args.agent,
        credential_arg = credential,
        llm_arg = args.llm,
        key_name = KEY_FILE,
        upstream = toml_string(&args.upstream),
        style = toml_string(&args.style),
    )
}

/// Validates the written file with its master key: every problem on a line, or nothing.
fn check(config: &Path, master: MasterKeys) -> Result<(), String> {
    match Loader::new(config, Some(std::sync::Arc::new(master))).load(1) {
        Ok((snapshot, _)) => {
            let problems = snapshot.credential_problems();
            if problems.is_empty() {
                Ok(())
            } else {
                Err(problems.iter().map(|p| format!("  {p}\n")).collect())
            }
        }
        Err(ConfigError::Invalid(errors)) => {
            Err(errors.0.iter().map(|e| format!("  {e}\n")).collect())
        }
        Err(e) => Err(format!("  {e}\n")),
    }
}

fn print_next_steps(args: &InitArgs, config: &Path, key_file: &Path) {
    let (config, key_file) = (config.display(), key_file.display());
    println!(
        "wrote {config}\nwrote {key_file} (mode 0600: the master key; keep it, and keep it private)\n\n\
         Next:\n\
         \x20 export IDGUARD_MASTER_KEY_FILE={key_file}\n\
         \x20 idguard check --config {config}\n\
         \x20 idguard secret new --agent {agent} --config {config}   # paste the line it prints into {config}\n\
         \x20 idguard serve --config {config}\n\
         \x20 idguard token --url http://{public} --client-id {agent} --secret-stdin < SECRET_FILE\n\n\
         The agent then calls http://{public}/llm/{llm}/ with that token as its API key.",
        agent = args.agent,
        public = args.listen,
        llm = args.llm,
    );
}

/// Creates `path` (which must not exist) with `mode`, holding `text`.
fn write_new(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => anyhow::anyhow!(
            "{} already exists: init never overwrites a file",
            path.display()
        ),
        _ => anyhow::anyhow!("writing {}: {e}", path.display()),
    })?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
