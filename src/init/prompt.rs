//! Reading a secret for `idguard init`: piped in on standard input, or typed at a terminal with echo off.

use std::io::{BufRead as _, IsTerminal as _, Read as _, Write as _};

use anyhow::Context as _;
use zeroize::Zeroizing;

/// The secret described by `what`: all of standard input without its trailing line end when it is piped, or one
/// line typed at the terminal after a prompt on standard error, not echoed. Never empty.
///
/// # Errors
/// Standard input cannot be read, the terminal's echo cannot be turned off, or nothing was given.
pub(super) fn secret(what: &str) -> anyhow::Result<Zeroizing<String>> {
    let stdin = std::io::stdin();
    let mut value = Zeroizing::new(String::new());
    if stdin.is_terminal() {
        eprint!("{what} (input hidden): ");
        let _ = std::io::stderr().flush();
        let echo = EchoOff::new(&stdin)?;
        let read = stdin.lock().read_line(&mut value);
        drop(echo);
        read.context("reading the key from the terminal")?;
    } else {
        stdin
            .lock()
            .read_to_string(&mut value)
            .context("reading the key from standard input")?;
    }
    let keep = value.trim_end_matches(['\r', '\n']).len();
    value.truncate(keep);
    if value.is_empty() {
        anyhow::bail!(
            "no {what} was given: pipe it in, e.g. `printf %s \"$OPENAI_API_KEY\" | idguard init DIR`"
        );
    }
    Ok(value)
}

/// The terminal's echo turned off until dropped.
struct EchoOff<'a> {
    fd: &'a std::io::Stdin,
    saved: rustix::termios::Termios,
}

impl<'a> EchoOff<'a> {
    fn new(fd: &'a std::io::Stdin) -> anyhow::Result<Self> {
        use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
        let saved = tcgetattr(fd).context("reading the terminal's settings")?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        // Still echo the final newline, so the next output starts on its own line.
        quiet.local_modes.insert(LocalModes::ECHONL);
        tcsetattr(fd, OptionalActions::Now, &quiet).context("turning the terminal's echo off")?;
        Ok(Self { fd, saved })
    }
}

impl Drop for EchoOff<'_> {
    fn drop(&mut self) {
        let _ =
            rustix::termios::tcsetattr(self.fd, rustix::termios::OptionalActions::Now, &self.saved);
    }
}
