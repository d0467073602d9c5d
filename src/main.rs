//! The `idguard` binary: parse the command line and environment, set up tracing and the crypto provider, and
//! call the library. All behaviour lives in the crates and in `idguard::serve`.

mod cli;

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory as _, FromArgMatches as _};
use idguard::serve::{Environment, Listeners, Options, Server, shutdown_signal};

use crate::cli::{Cli, Command, LogFormat};

fn main() -> ExitCode {
    let cli = parse();
    init_tracing(cli.log_format);
    // One crypto provider for the whole process: aws-lc-rs, for rustls and jsonwebtoken alike.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The command line, with the admin commands' environment help added to each of them.
fn cli_command() -> clap::Command {
    idguard::admin_cli::args::with_env_help(Cli::command())
}

fn parse() -> Cli {
    let mut matches = cli_command().get_matches();
    Cli::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.exit())
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Health { url, timeout_ms } => Ok(idguard::health::run(
            &url,
            std::time::Duration::from_millis(timeout_ms),
        )),
        Command::Version => {
            println!("idguard {}", env!("CARGO_PKG_VERSION"));
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config, data_dir } => {
            idguard::commands::check(&config, data_dir, Environment::from_process()?)
        }
        Command::Export {
            config,
            data_dir,
            output,
        } => idguard::commands::export(
            &config,
            data_dir,
            output.as_deref(),
            Environment::from_process()?,
        ),
        Command::Reseal { config, data_dir } => {
            idguard::commands::reseal(&config, data_dir, Environment::from_process()?)
        }
        Command::Seal { id, new_key } => {
            let env = if new_key {
                Environment::default()
            } else {
                Environment::from_process()?
            };
            idguard::commands::seal(id.as_deref(), new_key, env)
        }
        Command::Serve {
            config,
            listen,
            admin_listen,
            workers,
            data_dir,
        } => runtime(workers)?.block_on(async move {
            let server = Server::build(Options {
                config,
                data_dir,
                env: Environment::from_process()?,
            })?;
            let (public, admin) = server.addresses(listen, admin_listen);
            let listeners = Listeners::bind(public, admin).await?;
            let reload = server.reload_handle();
            server.run(listeners, shutdown_signal(reload)).await?;
            Ok(ExitCode::SUCCESS)
        }),
        Command::Init(args) => idguard::init::run(args),
        Command::Secret(args) => idguard::secret::run(args, Environment::from_process()?),
        Command::Token(args) => idguard::token::run(args),
        Command::Demo { listen, once } => runtime(None)?.block_on(idguard::demo::run(listen, once)),
        Command::Admin(args) => Ok(idguard::admin_cli::run(*args)),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut cli_command(), "idguard", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            clap_mangen::Man::new(cli_command())
                .render(&mut std::io::stdout())
                .context("writing the man page")?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn runtime(workers: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = match workers {
        Some(0) => anyhow::bail!("--workers must be at least 1"),
        // One worker: a current-thread runtime skips work stealing and cross-thread wake-ups entirely.
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all().build().context("starting the runtime")
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env(idguard_config::env::ENV_LOG)
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR").as_deref(),
        ))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

/// Whether text logs carry colour: only on a terminal (a file or a pipe gets plain text), and never when
/// `NO_COLOR` is set to anything but the empty string (<https://no-color.org>).
fn colour(terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    terminal && no_color.is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::colour;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        let set = Some(std::ffi::OsStr::new("1"));
        let empty = Some(std::ffi::OsStr::new(""));
        assert!(colour(true, None));
        assert!(colour(true, empty));
        assert!(!colour(true, set));
        assert!(!colour(false, None));
        assert!(!colour(false, set));
    }
}
