//! `idguard admin`: a client of the admin API for people and scripts. Every operation of
//! `admin/src/api/openapi.json` is one command; answers print as tables (or the API's JSON with `--output json`).
//!
//! # Layout
//! - [`args`]: the clap definitions (`idguard admin [OPTIONS] RESOURCE VERB …`), embedded in the binary's command
//!   line so that completions and the man page cover them.
//! - `plan`: a command → the one request it makes and how its answer prints; every path the API has is built
//!   here and nowhere else.
//! - `input`: standard input (the token with `--token-stdin`, secrets, `--from-file -`) and files.
//! - `client`: the HTTP client (hyper-util over rustls for https listeners; `--ca-file`).
//! - `output`: tables, objects, the topology tree, values shown once, the API's errors.
//!
//! Secrets stay off the command line (argv is visible to every user through `ps`): the token comes from
//! `IDGUARD_ADMIN_TOKEN`, `--token-file` or `--token-stdin`; credential values and passwords from standard input.
//! The token is held as a [`Secret`] and sent only in `Authorization`; no message prints it.
//!
//! Exit status: 0 done; 1 the API refused (4xx or 5xx: its `code`, `message` and fields on standard error);
//! 2 a usage, input or connection error.

pub mod args;
mod client;
mod input;
mod output;
mod plan;

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use idguard_config::Secret;
use serde_json::Value;

pub use args::AdminArgs;
use args::Output;
use client::{Answer, Client};
use input::Stdin;
use plan::{Plan, Render};

/// The environment variable holding the admin token (the same one `idguard serve` reads).
pub const ENV_ADMIN_TOKEN: &str = idguard_config::env::ENV_ADMIN_TOKEN;

/// What stops a command before or instead of an answer of the API.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad arguments or input (no token, an unreadable file, empty standard input): exit 2.
    #[error("{0}")]
    Usage(String),
    /// The API could not be reached or did not answer: exit 2.
    #[error("{0}")]
    Connection(String),
    /// The API answered with an error (its message, already formatted): exit 1.
    #[error("{0}")]
    Refused(String),
}

impl CliError {
    fn exit_code(&self) -> ExitCode {
        match self {
            Self::Refused(_) => ExitCode::from(1),
            Self::Usage(_) | Self::Connection(_) => ExitCode::from(2),
        }
    }
}

/// Runs one `idguard admin` command to completion: the answer on standard output, an error on standard error.
pub fn run(args: AdminArgs) -> ExitCode {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Usage(format!("starting the runtime: {e}")))
        .and_then(|rt| rt.block_on(execute(&args)));
    match result {
        Ok(text) => {
            // A closed pipe (`| head`) is not an error worth a message.
            let _ = std::io::stdout().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            e.exit_code()
        }
    }
}

async fn execute(args: &AdminArgs) -> Result<String, CliError> {
    let mut stdin = Stdin::new();
    let token = token(args, &mut stdin)?;
    let plan = plan::plan(&args.command, &mut stdin)?;
    let client = Client::new(
        &args.url,
        token,
        args.ca_file.as_deref(),
        Duration::from_secs(args.timeout.max(1)),
    )?;
    match plan.all {
        Some(key) => all_pages(&client, plan, key, args.output).await,
        None => {
            let answer = client.send(&plan.call).await?;
            let body = checked(&answer)?;
            Ok(render(&plan.render, &answer, &body, args.output))
        }
    }
}

/// The token: `--token-file`, `--token-stdin`, or the environment, in that order of precedence.
fn token(args: &AdminArgs, stdin: &mut Stdin) -> Result<Secret, CliError> {
    if let Some(path) = &args.token_file {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| CliError::Usage(format!("--token-file {}: {e}", path.display())))?,
        );
        let line = text.lines().next().unwrap_or("").trim();
        if line.is_empty() {
            return Err(CliError::Usage(format!(
                "--token-file {}: the file is empty",
                path.display()
            )));
        }
        return Ok(Secret::new(line.to_owned()));
    }
    if args.token_stdin {
        return stdin.token();
    }
    match std::env::var(ENV_ADMIN_TOKEN) {
        Ok(t) if !t.trim().is_empty() => Ok(Secret::new(t.trim().to_owned())),
        _ => Err(CliError::Usage(format!(
            "no admin token: set {ENV_ADMIN_TOKEN}, or give --token-file FILE (the server writes one to \
             <data dir>/admin.token) or --token-stdin"
        ))),
    }
}

/// The body of a success as JSON (`Null` when empty); an error answer becomes [`CliError::Refused`].
fn checked(answer: &Answer) -> Result<Value, CliError> {
    let body: Value = if answer.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&answer.body).unwrap_or(Value::Null)
    };
    if answer.status.is_client_error() || answer.status.is_server_error() {
        return Err(CliError::Refused(output::api_error(
            answer.status.as_u16(),
            &body,
            &String::from_utf8_lossy(&answer.body),
        )));
    }
    Ok(body)
}

fn render(how: &Render, answer: &Answer, body: &Value, mode: Output) -> String {
    let raw = || {
        let mut s = String::from_utf8_lossy(&answer.body).into_owned();
        if !s.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
        s
    };
    match (mode, how) {
        (Output::Json, _) => raw(),
        (Output::Table, Render::Json) => raw(),
        (Output::Table, Render::Done(line)) => format!("{line}\n"),
        (Output::Table, Render::List(key)) => {
            let items = body[*key].as_array().map_or(&[][..], Vec::as_slice);
            let mut out = output::table(items);
            if let Some(next) = body["next_cursor"].as_str() {
                out.push_str(&format!("(more: --cursor {next}, or --all)\n"));
            }
            out
        }
        (Output::Table, Render::Object) => output::object(body),
        (Output::Table, Render::Once { field, label }) => output::once(body, field, label),
        (Output::Table, Render::Topology) => output::topology(body),
    }
}

/// `--all`: every page, following `next_cursor`, printed as one list (`{"<key>": [...], "next_cursor": null}` in
/// JSON).
async fn all_pages(
    client: &Client,
    mut plan: Plan,
    key: &'static str,
    mode: Output,
) -> Result<String, CliError> {
    let mut items: Vec<Value> = vec![];
    loop {
        let answer = client.send(&plan.call).await?;
        let body = checked(&answer)?;
        items.extend(body[key].as_array().cloned().unwrap_or_default());
        match body["next_cursor"].as_str() {
            Some(next) => {
                plan.call.query.retain(|(k, _)| *k != "cursor");
                plan.call.query.push(("cursor", next.to_owned()));
            }
            None => break,
        }
    }
    Ok(match mode {
        Output::Json => {
            let mut all = serde_json::Map::new();
            all.insert(key.to_owned(), Value::from(items));
            all.insert("next_cursor".to_owned(), Value::Null);
            format!("{}\n", Value::Object(all))
        }
        Output::Table => output::table(&items),
    })
}
