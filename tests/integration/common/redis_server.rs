//! A `redis-server` of the test's own on a free loopback port, so a test can break it: kill it, restart it with
//! its data (AOF in its own directory) or empty, freeze it with SIGSTOP, or slow it with `DEBUG SLEEP`.
//! The shared Redis on 6379 is never broken by a test.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running (or stopped) `redis-server`; killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    extra: Vec<String>,
    /// `port` is the TLS port and the plain one is off.
    tls: bool,
}

/// A free loopback port (bound and released; good enough for a test).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    /// Starts one with append-only persistence in a fresh directory.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts one on `port` (chosen earlier with [`free_port`], e.g. to start a replica before its Redis).
    pub fn start_on(port: u16) -> Self {
        let mut server = Self {
            child: None,
            port,
            dir: tempfile::tempdir().unwrap(),
            extra: Vec::new(),
            tls: false,
        };
        server.spawn();
        server
    }

    /// Starts one with extra `redis-server` arguments (e.g. TLS or ACL options).
    pub fn start_with(extra: &[&str]) -> Self {
        let mut server = Self {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            tls: false,
        };
        server.spawn();
        server
    }

    /// Starts one that speaks TLS only (`--port 0 --tls-port <port>`), with extra arguments naming its
    /// certificate, key and CA (`--tls-cert-file`, `--tls-key-file`, `--tls-ca-cert-file`, ...).
    pub fn start_tls(extra: &[&str]) -> Self {
        let mut server = Self {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            tls: true,
        };
        server.spawn();
        server
    }

    /// `redis://127.0.0.1:<port>` (`rediss://` for a TLS one).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The port it listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its data directory (AOF files live here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn spawn(&mut self) {
        let port = self.port.to_string();
        let ports: Vec<&str> = if self.tls {
            vec!["--port", "0", "--tls-port", &port]
        } else {
            vec!["--port", &port]
        };
        let child = Command::new("redis-server")
            .args(ports)
            .args(["--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                // `DEBUG SLEEP` (slowing Redis on purpose) from the test's own loopback connections.
                "--enable-debug-command",
                "local",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (.ci/run installs it)");
        self.child = Some(child);
        self.wait_listening();
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: the process is gone, its data stays on disk.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the data it had (what was fsynced to the AOF).
    pub fn restart_with_data(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Starts it again on the same port with nothing: a Redis that lost its data.
    pub fn restart_empty(&mut self) {
        self.kill();
        self.dir = tempfile::tempdir().unwrap();
        self.spawn();
    }

    /// SIGSTOP: connections stay open and nothing answers (a hung Redis).
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`RedisServer::freeze`].
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let ok = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(ok.success(), "kill {sig} {pid}");
    }

    /// A synchronous connection, for the test's own commands.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap()
    }

    /// Sends `DEBUG SLEEP <secs>` from a background thread: Redis answers nobody for that long.
    pub fn debug_sleep(&self, secs: f64) -> std::thread::JoinHandle<()> {
        let mut conn = self.conn();
        std::thread::spawn(move || {
            let _: Result<(), _> = redis::cmd("DEBUG").arg("SLEEP").arg(secs).query(&mut conn);
        })
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
