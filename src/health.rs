//! `idguard health URL`: one plain-HTTP `GET` of a health endpoint (`/healthz`, `/readyz` on the admin listener),
//! exit status 0 for a 2xx answer and 1 for anything else, for container health checks in images that have no shell
//! and no `curl` (deploy/docker/Dockerfile, deploy/compose.yaml).
//!
//! Deliberately tiny and synchronous: std sockets, no runtime, no TLS, one request with `Connection: close`, the
//! whole exchange bounded by one deadline, at most [`MAX_ANSWER`] bytes read. It prints the status and the first
//! line of a short plain-text body (`/readyz`'s reason, e.g. `not ready: sealed`), never headers.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Most bytes of an answer read: enough for the status line, the headers and a reason line.
pub const MAX_ANSWER: usize = 16 * 1024;

/// Why a probe could not be made or read. Every variant exits 1 (unhealthy) except [`HealthError::Url`], which
/// is a usage error (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The URL is not `http://HOST[:PORT][/PATH]`. Not echoed: it may carry a `user:password@`.
    #[error("the URL must be http://HOST[:PORT][/PATH] (plain HTTP: no TLS, no user@)")]
    Url,
    /// The host name did not resolve.
    #[error("{authority}: does not resolve: {source}")]
    Resolve {
        /// `host:port` as given.
        authority: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// No address accepted a connection before the deadline.
    #[error("{authority}: could not connect: {source}")]
    Connect {
        /// `host:port` as given.
        authority: String,
        /// The last connection error.
        source: std::io::Error,
    },
    /// The request could not be sent or the answer read before the deadline.
    #[error("{authority}: no answer: {source}")]
    Exchange {
        /// `host:port` as given.
        authority: String,
        /// The socket error (a timeout reads as `WouldBlock`/`TimedOut`).
        source: std::io::Error,
    },
    /// The answer does not start with an HTTP/1.x status line.
    #[error("{authority}: not an HTTP/1.x answer")]
    NotHttp {
        /// `host:port` as given.
        authority: String,
    },
}

/// What a health endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status code.
    pub status: u16,
    /// The body's first line, when the body is short plain text (control characters removed, at most 200
    /// characters); empty otherwise.
    pub reason: String,
}

impl Answer {
    /// Healthy: a 2xx status.
    pub fn healthy(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A parsed probe target.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    /// `host:port` for connecting and for the `Host` header.
    authority: String,
    /// The request target, starting with `/`.
    path: String,
}

/// Parses `http://HOST[:PORT][/PATH]` (port 80 by default; the path defaults to `/`).
fn parse(url: &str) -> Result<Target, HealthError> {
    let bad = || HealthError::Url;
    let uri: http::Uri = url.parse().map_err(|_| bad())?;
    if uri.scheme_str() != Some("http") {
        return Err(bad());
    }
    let authority = uri.authority().ok_or_else(bad)?;
    // A password here would be echoed in every error message; a health endpoint needs none.
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return Err(bad());
    }
    let port = authority.port_u16().unwrap_or(80);
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".to_owned());
    Ok(Target {
        authority: format!("{}:{port}", authority.host()),
        path,
    })
}

/// One `GET` of `url`, all of it (resolving, connecting, sending, reading) within `timeout`.
pub fn probe(url: &str, timeout: Duration) -> Result<Answer, HealthError> {
    let target = parse(url)?;
    let deadline = Instant::now() + timeout;
    let authority = target.authority.clone();
    let addrs: Vec<SocketAddr> = target
        .authority
        .to_socket_addrs()
        .map_err(|source| HealthError::Resolve {
            authority: authority.clone(),
            source,
        })?
        .collect();
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, remaining(deadline)) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let mut stream = stream.ok_or(HealthError::Connect {
        authority: authority.clone(),
        source: last,
    })?;
    let exchange = |source| HealthError::Exchange {
        authority: authority.clone(),
        source,
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: idguard-health\r\nAccept: text/plain\r\n\
         Connection: close\r\n\r\n",
        target.path, target.authority
    );
    stream
        .set_write_timeout(Some(remaining(deadline)))
        .map_err(exchange)?;
    stream.write_all(request.as_bytes()).map_err(exchange)?;
    let mut answer = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    // Read until the server closes (Connection: close), the cap, or the deadline; a status line is all we need,
    // so a deadline after the head has arrived still yields an answer.
    loop {
        stream
            .set_read_timeout(Some(remaining(deadline)))
            .map_err(exchange)?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n.min(MAX_ANSWER - answer.len())]);
                if answer.len() >= MAX_ANSWER {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) if head_end(&answer).is_some() => break,
            Err(e) => return Err(exchange(e)),
        }
    }
    read_answer(&answer).ok_or(HealthError::NotHttp { authority })
}

/// Time left before `deadline`, at least 1 ms (a zero timeout means "none" to the socket calls).
fn remaining(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

/// Where the head ends (the index just past `\r\n\r\n`).
fn head_end(answer: &[u8]) -> Option<usize> {
    answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// Parses the status line, and the body's first line when the body is not chunked.
fn read_answer(answer: &[u8]) -> Option<Answer> {
    let line_end = answer.windows(2).position(|w| w == b"\r\n")?;
    let status_line = std::str::from_utf8(&answer[..line_end]).ok()?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next()?;
    let code = parts.next()?;
    if !version.starts_with("HTTP/1.") || code.len() != 3 {
        return None;
    }
    let status: u16 = code.parse().ok()?;
    let reason = match head_end(answer) {
        Some(end) => {
            let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
            // A chunked body starts with a chunk size, not text; the status alone is the answer then.
            if head.contains("\ntransfer-encoding: chunked") {
                String::new()
            } else {
                first_line(&answer[end..])
            }
        }
        None => String::new(),
    };
    Some(Answer { status, reason })
}

/// The first line of `body`, printable characters only, at most 200 of them.
fn first_line(body: &[u8]) -> String {
    String::from_utf8_lossy(body)
        .lines()
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// `idguard health URL`: probes, prints `STATUS REASON` (or the error) and returns the exit status: 0 healthy, 1
/// unhealthy or unreachable, 2 a URL it cannot probe.
pub fn run(url: &str, timeout: Duration) -> ExitCode {
    match probe(url, timeout) {
        Ok(answer) => {
            println!("{} {}", answer.status, answer.reason);
            if answer.healthy() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e @ HealthError::Url) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("unhealthy: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_it_probes_and_urls_it_refuses() {
        assert_eq!(
            parse("http://127.0.0.1:9090/readyz").unwrap(),
            Target {
                authority: "127.0.0.1:9090".into(),
                path: "/readyz".into()
            }
        );
        assert_eq!(
            parse("http://localhost").unwrap(),
            Target {
                authority: "localhost:80".into(),
                path: "/".into()
            }
        );
        assert_eq!(
            parse("http://[::1]:9090/healthz?x=1").unwrap().path,
            "/healthz?x=1"
        );
        for bad in [
            "https://127.0.0.1:9090/readyz",
            "127.0.0.1:9090/readyz",
            "/readyz",
            "http://user:pw@127.0.0.1:9090/readyz",
            "ftp://127.0.0.1/",
            "",
        ] {
            assert!(matches!(parse(bad), Err(HealthError::Url)), "{bad}");
        }
    }

    #[test]
    fn answers_are_read_by_status_line_and_first_body_line() {
        let ok = read_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n").unwrap();
        assert_eq!(
            ok,
            Answer {
                status: 200,
                reason: "ok".into()
            }
        );
        assert!(ok.healthy());
        let not = read_answer(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 20\r\n\r\nnot ready: sealed\n\x1b[31m",
        )
        .unwrap();
        assert_eq!(not.status, 503);
        assert_eq!(not.reason, "not ready: sealed");
        assert!(!not.healthy());
        let chunked = read_answer(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nok\n\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(chunked.reason, "");
        assert!(read_answer(b"SSH-2.0-OpenSSH_9.2\r\n").is_none());
        assert!(read_answer(b"HTTP/1.1 2000 OK\r\n\r\n").is_none());
        assert!(read_answer(b"").is_none());
    }
}
