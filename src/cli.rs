//! The command line. Every flag that names a file or address can also come from the environment where noted.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use idguard_config::env::{ENV_CONFIG, ENV_DATA_DIR, ENV_LOG_FORMAT, ENV_WORKERS};

/// The environment variables each command reads, listed under its `--help` (a variable a flag also takes shows
/// beside the flag as `[env: …]`). The names are those of `idguard_config::env`.
mod env_help {
    macro_rules! keys {
        () => {
            "  IDGUARD_MASTER_KEY       the master key, TERM:BASE64\n  \
             IDGUARD_MASTER_KEY_FILE  a file of master keys, one TERM:BASE64 a line\n"
        };
    }
    macro_rules! redis {
        () => {
            "  IDGUARD_REDIS_URL        the Redis store, overriding [store] redis_url\n  \
             IDGUARD_REDIS_USERNAME, IDGUARD_REDIS_PASSWORD, IDGUARD_REDIS_PASSWORD_FILE  its ACL user\n"
        };
    }
    macro_rules! logs {
        () => {
            "  IDGUARD_LOG              the log filter (RUST_LOG syntax; RUST_LOG is read when it is unset)\n  \
             NO_COLOR                 set: no colour in text logs (there is colour only on a terminal anyway)"
        };
    }
    macro_rules! file_env {
        () => {
            "  and every variable a credential's `env = \"NAME\"` in the routing file names\n"
        };
    }

    pub(crate) const SERVE: &str = concat!(
        "Environment:\n",
        keys!(),
        redis!(),
        "  IDGUARD_ADMIN_TOKEN      the admin API's token (default: read from, or generated into, the data directory)\n  \
         IDGUARD_CONSOLE_URL      where browsers reach the admin listener (the console's sign-in redirect)\n",
        file_env!(),
        logs!()
    );
    pub(crate) const CHECK: &str =
        concat!("Environment:\n", keys!(), redis!(), file_env!(), logs!());
    pub(crate) const STORE: &str = concat!("Environment:\n", keys!(), redis!(), logs!());
    pub(crate) const SEAL: &str = concat!("Environment:\n", keys!(), logs!());
    pub(crate) const LOGS: &str = concat!("Environment:\n", logs!());
    pub(crate) const TOKEN: &str = concat!(
        "Environment:\n",
        "  IDGUARD_CLIENT_SECRET    the client secret, when neither --secret-stdin, --secret-file nor --key-file is given\n",
        logs!()
    );
}

/// idguard: a credential-brokering reverse proxy for AI agents.
#[derive(Debug, Parser)]
#[command(name = "idguard", version, about)]
pub(crate) struct Cli {
    /// Log line format.
    #[arg(long, global = true, env = ENV_LOG_FORMAT, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Log line formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the proxy and the admin listener.
    #[command(after_help = env_help::SERVE)]
    Serve {
        /// The routing file (TOML).
        #[arg(long, short, env = ENV_CONFIG)]
        config: PathBuf,
        /// Public listener address, overriding `listeners.public` (use port 0 for any free port).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Admin listener address, overriding `listeners.admin`.
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
        /// Runtime worker threads (default: one per core).
        #[arg(long, env = ENV_WORKERS)]
        workers: Option<usize>,
        /// Where the admin API's store, audit log and admin token live (default: `idguard-data` beside the config).
        #[arg(long, env = ENV_DATA_DIR)]
        data_dir: Option<std::path::PathBuf>,
    },
    /// Validate a routing file: print every error with its location; exit 1 if there is any.
    #[command(after_help = env_help::CHECK)]
    Check {
        /// The routing file (TOML).
        #[arg(long, short, env = ENV_CONFIG)]
        config: PathBuf,
        /// Also judge what the admin API stored (the store `serve` would use: Redis when configured, else the
        /// embedded store in this directory), merged with the file as a reload merges them. The embedded store
        /// cannot be read while a server uses it: check a copy.
        #[arg(long, env = ENV_DATA_DIR)]
        data_dir: Option<PathBuf>,
    },
    /// Write the whole topology (the routing file plus everything created through the admin API) as one
    /// routing file. With a Redis store (`[store] redis_url` or IDGUARD_REDIS_URL) it reads the live store while
    /// the replicas run; the embedded store in the data directory is read directly: stop the server, or use a copy.
    #[command(after_help = env_help::STORE)]
    Export {
        /// The routing file (TOML).
        #[arg(long, short, env = ENV_CONFIG)]
        config: PathBuf,
        /// The data directory (default: `idguard-data` beside the config).
        #[arg(long, env = ENV_DATA_DIR)]
        data_dir: Option<PathBuf>,
        /// Where to write it (default: standard output).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Re-wrap every credential stored through the admin API under the newest master-key term (run it after
    /// adding a term, before removing the old one). Credentials in the routing file are listed, not changed.
    #[command(after_help = env_help::STORE)]
    Reseal {
        /// The routing file (TOML): where the store is ([store] redis_url), and its own credentials to report.
        #[arg(long, short, env = ENV_CONFIG)]
        config: PathBuf,
        /// The data directory (default: `idguard-data` beside the config). The embedded store in it can only be
        /// opened with the server stopped; a Redis store can be resealed while replicas serve.
        #[arg(long, env = ENV_DATA_DIR)]
        data_dir: Option<PathBuf>,
    },
    /// Seal a credential value read from standard input (never from the command line) for the routing file.
    /// On a terminal it prompts (on standard error) and reads one line.
    #[command(after_help = env_help::SEAL)]
    Seal {
        /// The credential id the value is for; it is bound into the sealed value.
        #[arg(long, required_unless_present = "new_key")]
        id: Option<String>,
        /// Instead, print a fresh random master key (`1:BASE64`) for IDGUARD_MASTER_KEY or a key file.
        #[arg(long)]
        new_key: bool,
    },
    /// Write a working starting point into DIR: a master key file (0600) and a routing file with the identity
    /// service, one agent, one LLM node whose API key is read from standard input (or asked for on a terminal)
    /// and sealed, and the edge between them. Never overwrites a file.
    #[command(after_help = env_help::LOGS)]
    Init(idguard::init::InitArgs),
    /// Client secrets for agents and clients declared in the routing file (`secret new`).
    #[command(after_help = env_help::STORE)]
    Secret(idguard::secret::SecretArgs),
    /// Get an access token from idguard's identity service and print it (for shell use): a client secret from
    /// standard input, a file or IDGUARD_CLIENT_SECRET (never the command line), or private_key_jwt with a key
    /// file.
    #[command(after_help = env_help::TOKEN)]
    Token(idguard::token::TokenArgs),
    /// Run a self-contained demo: a mock LLM, a demo agent with a client secret, and idguard between them. Its
    /// temporary directory (keys and secrets) is removed when it stops, Ctrl-C included.
    #[command(after_help = env_help::LOGS)]
    Demo {
        /// Public listener address for the demo proxy.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Send one request through the proxy, print what happened, and exit.
        #[arg(long)]
        once: bool,
    },
    /// Drive the admin API: agents, nodes, credentials, authorizations, clients, the directory, operators, the
    /// audit log, usage and an agent's topology. Secrets (the token, credential values, passwords) are never taken
    /// from the command line.
    Admin(Box<idguard::admin_cli::AdminArgs>),
    /// Print a completion script for SHELL (bash, zsh, fish, elvish, powershell), e.g.
    /// `idguard completions bash > /etc/bash_completion.d/idguard`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `idguard man | man -l -`.
    Man,
    /// Probe a health endpoint over plain HTTP, e.g. `idguard health http://127.0.0.1:9090/readyz`: prints the
    /// status and reason; exit 0 for a 2xx answer, 1 otherwise. For container health checks without a shell.
    #[command(after_help = env_help::LOGS)]
    Health {
        /// `http://HOST[:PORT][/PATH]` (the admin listener's `/healthz` or `/readyz`).
        url: String,
        /// How long resolving, connecting and the exchange may take together, in milliseconds.
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
    /// Print the version.
    Version,
}
