//! Running the real `idguard` binary: capture everything it prints, find its bound addresses, signal it.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_idguard")
}

/// A running `idguard serve` whose stdout and stderr are collected.
pub struct Served {
    pub child: Child,
    pub output: Arc<Mutex<String>>,
    pub public: SocketAddr,
    pub admin: SocketAddr,
}

impl Served {
    /// Starts `idguard serve --config <config>` on ephemeral ports with JSON logs and the given environment.
    pub fn start(config: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_on(config, env, "127.0.0.1:0")
    }

    /// [`Served::start`] with the public listener on `public` (a port chosen beforehand, when the routing file
    /// must name it, e.g. as the identity issuer).
    pub fn start_on(config: &Path, env: &[(&str, &str)], public: &str) -> Self {
        let mut cmd = Command::new(bin());
        cmd.args([
            "--log-format",
            "json",
            "serve",
            "--listen",
            public,
            "--admin-listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(config)
        .env_remove("IDGUARD_MASTER_KEY")
        .env_remove("IDGUARD_MASTER_KEY_FILE")
        .env_remove("IDGUARD_LOG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let output = Arc::new(Mutex::new(String::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut o = output.lock().unwrap();
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found = output.lock().unwrap().lines().find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                (v["message"] == "listening").then(|| {
                    (
                        v["public"].as_str().unwrap().parse().unwrap(),
                        v["admin"].as_str().unwrap().parse().unwrap(),
                    )
                })
            });
            if let Some((public, admin)) = found {
                return Self {
                    child,
                    output,
                    public,
                    admin,
                };
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("idguard exited with {status}:\n{}", output.lock().unwrap());
            }
            assert!(
                Instant::now() < deadline,
                "idguard did not start:\n{}",
                output.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Sends SIGTERM and waits for a clean exit; returns everything printed.
    pub fn stop(mut self) -> String {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "idguard exited with {status}");
                break;
            }
            assert!(Instant::now() < deadline, "idguard did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100));
        self.output.lock().unwrap().clone()
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        // Reaped before the next process starts: until the killed one is gone it holds the data directory's
        // database lock ("Database already open" in a test that restarts on the same directory).
        let _ = self.child.wait();
    }
}

/// Runs `idguard ARGS` to completion with `stdin`; returns (exit code, stdout, stderr).
pub fn run(args: &[&str], env: &[(&str, &str)], stdin: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("IDGUARD_MASTER_KEY")
        .env_remove("IDGUARD_MASTER_KEY_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    // The child may exit before reading its input (a refused command): a broken pipe here is not a failure;
    // the exit code and output are what the tests check.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin.as_bytes()) {
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe,
            "writing the child's stdin: {e}"
        );
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
