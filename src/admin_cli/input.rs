//! What `idguard admin` reads besides its arguments: standard input (the token with `--token-stdin`, a secret, a
//! `--from-file -` body) and files. Standard input is read once, whole, and only when a command needs it.

use std::io::{IsTerminal as _, Read as _};
use std::path::Path;

use idguard_config::Secret;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::CliError;

/// Standard input, read on first use.
pub(crate) struct Stdin {
    /// What is left of it: `None` until read.
    rest: Option<Zeroizing<String>>,
    /// Something already took the body of standard input (a secret or a JSON body): a second one cannot.
    body_taken: Option<&'static str>,
}

impl Stdin {
    pub(crate) fn new() -> Self {
        Self {
            rest: None,
            body_taken: None,
        }
    }

    /// Standard input that holds `text` (tests).
    #[cfg(test)]
    pub(crate) fn with_text(text: &str) -> Self {
        Self {
            rest: Some(Zeroizing::new(text.to_owned())),
            body_taken: None,
        }
    }

    fn rest(&mut self, what: &str) -> Result<&mut Zeroizing<String>, CliError> {
        if self.rest.is_none() {
            let mut stdin = std::io::stdin();
            if stdin.is_terminal() {
                return Err(CliError::Usage(format!(
                    "{what} is read from standard input, never from the command line: pipe it in \
                     (e.g. `... < file`, or `printf %s \"$VALUE\" | idguard admin ...`)"
                )));
            }
            let mut text = Zeroizing::new(String::new());
            stdin
                .read_to_string(&mut text)
                .map_err(|e| CliError::Usage(format!("reading {what} from standard input: {e}")))?;
            self.rest = Some(text);
        }
        match self.rest.as_mut() {
            Some(rest) => Ok(rest),
            None => Err(CliError::Usage(format!(
                "reading {what} from standard input"
            ))),
        }
    }

    /// `--token-stdin`: the first line.
    pub(crate) fn token(&mut self) -> Result<Secret, CliError> {
        let rest = self.rest("the token (--token-stdin)")?;
        let (line, after) = match rest.find('\n') {
            Some(i) => (rest[..i].to_owned(), rest[i + 1..].to_owned()),
            None => (rest.to_string(), String::new()),
        };
        *rest = Zeroizing::new(after);
        let token = line.trim_end_matches('\r').to_owned();
        if token.is_empty() {
            return Err(CliError::Usage(
                "--token-stdin: the first line of standard input is empty".into(),
            ));
        }
        Ok(Secret::new(token))
    }

    /// A secret: the rest of standard input, without its trailing line ends; never empty.
    pub(crate) fn secret(&mut self, what: &'static str) -> Result<Secret, CliError> {
        self.take_body(what)?;
        let rest = self.rest(what)?;
        let value = rest.trim_end_matches(['\r', '\n']).to_owned();
        *rest = Zeroizing::new(String::new());
        if value.is_empty() {
            return Err(CliError::Usage(format!(
                "{what}: standard input was empty: pipe the value in, e.g. `printf %s \"$VALUE\" | idguard admin ...`"
            )));
        }
        Ok(Secret::new(value))
    }

    /// `--from-file -`: the rest of standard input as a JSON object.
    fn json(&mut self) -> Result<Map<String, Value>, CliError> {
        self.take_body("--from-file -")?;
        let rest = self.rest("the JSON body (--from-file -)")?;
        let text = std::mem::replace(rest, Zeroizing::new(String::new()));
        parse_object("standard input", &text)
    }

    fn take_body(&mut self, what: &'static str) -> Result<(), CliError> {
        match self.body_taken.replace(what) {
            Some(first) => Err(CliError::Usage(format!(
                "{first} and {what} both read standard input: give the body with --from-file FILE"
            ))),
            None => Ok(()),
        }
    }
}

/// The `--from-file` body: a JSON object from a file, or from standard input for `-`; `None` when not given.
pub(crate) fn body(path: Option<&Path>, stdin: &mut Stdin) -> Result<Map<String, Value>, CliError> {
    match path {
        None => Ok(Map::new()),
        Some(p) if p.as_os_str() == "-" => stdin.json(),
        Some(p) => {
            let text = Zeroizing::new(
                std::fs::read_to_string(p)
                    .map_err(|e| CliError::Usage(format!("--from-file {}: {e}", p.display())))?,
            );
            parse_object(&p.display().to_string(), &text)
        }
    }
}

/// A file's text (`-`: standard input), e.g. a public key.
pub(crate) fn file_text(
    flag: &'static str,
    path: &Path,
    stdin: &mut Stdin,
) -> Result<String, CliError> {
    if path.as_os_str() == "-" {
        stdin.take_body(flag)?;
        let rest = stdin.rest(flag)?;
        return Ok(std::mem::replace(rest, Zeroizing::new(String::new())).to_string());
    }
    std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("{flag} {}: {e}", path.display())))
}

fn parse_object(source: &str, text: &str) -> Result<Map<String, Value>, CliError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(CliError::Usage(format!(
            "--from-file {source}: must be a JSON object"
        ))),
        // serde_json's message names the line and column, never the text.
        Err(e) => Err(CliError::Usage(format!("--from-file {source}: {e}"))),
    }
}
