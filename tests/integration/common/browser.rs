//! A real browser for the console's tests: Debian's Chromium, headless, driven through `chromedriver` (WebDriver)
//! with fantoccini. Starting it FAILS the test when the driver or the browser cannot start — never a skip: a
//! machine without them is a broken test machine (`.ci/run` installs `chromium` and `chromium-driver`).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

/// Where the driver is unless `CHROMEDRIVER` says otherwise.
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Where the browser is unless `CHROMIUM` says otherwise.
const CHROMIUM: &str = "/usr/bin/chromium";

/// A headless Chromium session and its chromedriver; both end on drop.
pub struct Browser {
    pub client: Client,
    driver: Child,
    test: String,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium through it, for the test `test` (which
    /// names its screenshots). Panics, failing the test, when either cannot start.
    pub async fn start(test: &str) -> Self {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let driver_path = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| CHROMEDRIVER.into());
        let browser_path = std::env::var("CHROMIUM").unwrap_or_else(|_| CHROMIUM.into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{driver_path} could not start ({e}): the console's browser tests need the chromium and \
                     chromium-driver packages (.ci/run installs them)"
                )
            });
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = driver.try_wait() {
                panic!("{driver_path} exited at start with {status}");
            }
            assert!(
                Instant::now() < deadline,
                "{driver_path} did not listen within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": browser_path,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"],
            }),
        );
        let client = ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| {
                let _ = driver.kill();
                panic!("Chromium ({browser_path}) could not start through chromedriver: {e}")
            });
        Self {
            client,
            driver,
            test: test.to_owned(),
        }
    }

    /// Saves a PNG of the page as `<target dir>/screenshots/<test>[-<step>].png`; answers its path.
    pub async fn screenshot(&self, step: &str) -> PathBuf {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a screenshot is a PNG");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let name = if step.is_empty() {
            format!("{}.png", self.test)
        } else {
            format!("{}-{step}.png", self.test)
        };
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// The current URL's path.
    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_owned()
    }

    /// The element matching the CSS `selector`, waiting up to 10 s for it.
    pub async fn find(&self, selector: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("no {selector} on the page: {e}"))
    }

    /// Whether an element matches `selector` now.
    pub async fn has(&self, selector: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(selector))
            .await
            .unwrap()
            .is_empty()
    }

    /// Waits (up to 10 s) until the page's path is `path`.
    pub async fn wait_for_path(&self, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let now = self.path().await;
            if now == path {
                return;
            }
            assert!(Instant::now() < deadline, "still at {now}, not {path}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (up to 10 s) until the text of `selector` contains `needle` — also across a navigation that a click
    /// started (a form answered with a 303 to the page it was on), when the old page's element goes stale.
    pub async fn wait_for_text(&self, selector: &str, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = match self.client.find(Locator::Css(selector)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{selector} still reads {text:?}, without {needle:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Ends the browser session (the driver ends on drop).
    pub async fn finish(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `<target dir>/screenshots`: the target directory is the one the test binary's `idguard` was built into.
pub fn screenshot_dir() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_idguard"));
    // <target>/<profile>/idguard
    bin.parent()
        .and_then(|p| p.parent())
        .map(|t| t.join("screenshots"))
        .unwrap_or_else(|| PathBuf::from("target/screenshots"))
}
