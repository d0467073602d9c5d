//! The web console, in a real browser (headless Chromium through chromedriver) against the real `idguard` binary:
//! sign-in as a directory user bound to an operator through the identity service's authorization-code + PKCE flow,
//! the break-glass admin token and the demo's one-time link; sessions ended server-side; CSRF; roles; the security
//! headers; and a canary sweep of the binary's logs. Every browser test saves a screenshot of each page it checks
//! under `<target dir>/screenshots/`.

use crate::cases::leaks::canary;
use crate::common::browser::Browser;
use crate::common::client::{bearer, form, get, post};
use crate::common::harness::Setup;
use crate::common::process::Served;

mod diagram;
mod edits;
mod operators;
mod panels;
mod roles;
mod sign_in;

/// A running `idguard serve` with the identity service on a known public port, directory users `alice` (an
/// editor's operator), `bob` (a viewer's) and `carol` (no operator), and agents `agent-1`, `agent-2`.
pub(crate) struct World {
    pub(crate) served: Served,
    pub(crate) admin_token: String,
    pub(crate) password: String,
    _setup: Setup,
}

impl World {
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// [`World::start`] with more of the routing file (`configure` adds to the setup before it is written).
    pub(crate) async fn start_with(configure: impl FnOnce(&mut Setup)) -> Self {
        let admin_token = canary("admintoken");
        let password = canary("password");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let hash = idguard_config::hashes::hash_password(&password).unwrap();
        let mut s = Setup::new();
        s.agent("agent-1").agent("agent-2");
        s.identity = Some(format!("issuer = \"http://127.0.0.1:{port}\"\n"));
        for user in ["alice", "bob", "carol"] {
            s.raw(&format!(
                "[[users]]\nid = \"{user}\"\npassword_hash = \"{hash}\"\n"
            ));
        }
        configure(&mut s);
        std::fs::write(s.config_path(), s.toml()).unwrap();
        let key_file = s.dir.path().join("master.key");
        std::fs::write(&key_file, &s.master).unwrap();
        let served = Served::start_on(
            &s.config_path(),
            &[
                ("IDGUARD_MASTER_KEY_FILE", key_file.to_str().unwrap()),
                ("IDGUARD_ADMIN_TOKEN", &admin_token),
                ("IDGUARD_LOG", "trace"),
            ],
            &format!("127.0.0.1:{port}"),
        );
        let w = World {
            served,
            admin_token,
            password,
            _setup: s,
        };
        for (id, role, user) in [("op-alice", "editor", "alice"), ("op-bob", "viewer", "bob")] {
            let (status, _, body) = w
                .api_post(
                    "/admin/v1/operators",
                    &format!(r#"{{"id":"{id}","role":"{role}","user":"{user}"}}"#),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        }
        w
    }

    /// A URL on the admin listener.
    pub(crate) fn admin(&self, path: &str) -> String {
        format!("http://{}{path}", self.served.admin)
    }

    pub(crate) async fn api_get(&self, path: &str) -> (u16, hyper::HeaderMap, String) {
        get(
            &self.admin(path),
            &[("authorization", &bearer(&self.admin_token))],
        )
        .await
    }

    pub(crate) async fn api_post(&self, path: &str, body: &str) -> (u16, hyper::HeaderMap, String) {
        post(
            &self.admin(path),
            &[("authorization", &bearer(&self.admin_token))],
            body,
        )
        .await
    }

    pub(crate) async fn served_patch(
        &self,
        path: &str,
        body: &str,
    ) -> (u16, hyper::HeaderMap, String) {
        self.api_send("PATCH", path, body).await
    }

    pub(crate) async fn served_delete(&self, path: &str) -> (u16, hyper::HeaderMap, String) {
        self.api_send("DELETE", path, "").await
    }

    async fn api_send(
        &self,
        method: &str,
        path: &str,
        body: &str,
    ) -> (u16, hyper::HeaderMap, String) {
        let req = hyper::Request::builder()
            .method(method)
            .uri(self.admin(path))
            .header("authorization", bearer(&self.admin_token))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.to_owned(),
            )))
            .unwrap();
        crate::common::client::send(req).await
    }

    /// The console's reply to a form POST as the session `cookie`.
    pub(crate) async fn console_post(
        &self,
        path: &str,
        cookie: &str,
        body: &str,
    ) -> (u16, hyper::HeaderMap, String) {
        form(
            &self.admin(path),
            &[("cookie", &format!("idg_console={cookie}"))],
            body,
        )
        .await
    }
}

/// Signs `user` in through the directory flow: the console's sign-in page, the identity service's form, back.
pub(crate) async fn sign_in_as(b: &Browser, w: &World, user: &str, password: &str) {
    b.goto(&w.admin("/console/agents")).await;
    b.wait_for_path("/console/signin").await;
    b.find("#sign-in-directory").await.click().await.unwrap();
    b.wait_for_path("/oauth2/authorize").await;
    b.find("input[name=username]")
        .await
        .send_keys(user)
        .await
        .unwrap();
    b.find("input[name=password]")
        .await
        .send_keys(password)
        .await
        .unwrap();
    b.find("button[type=submit]").await.click().await.unwrap();
}

/// Signs in as the owner with the admin token (the break-glass form).
pub(crate) async fn sign_in_as_owner(b: &Browser, w: &World) {
    b.goto(&w.admin("/console/signin")).await;
    b.find("#break-glass summary").await.click().await.unwrap();
    b.find("#admin-token")
        .await
        .send_keys(&w.admin_token)
        .await
        .unwrap();
    b.find("#sign-in-token").await.click().await.unwrap();
    b.wait_for_path("/console/agents").await;
}

/// The session cookie's value in the browser.
pub(crate) async fn session_cookie(b: &Browser) -> String {
    b.client
        .get_named_cookie("idg_console")
        .await
        .unwrap()
        .value()
        .to_owned()
}

/// The page's CSRF token (the sign-out form carries it on every signed-in page).
pub(crate) async fn csrf_of(b: &Browser) -> String {
    b.find("input[name=csrf]")
        .await
        .attr("value")
        .await
        .unwrap()
        .unwrap()
}

/// Stops the binary and checks that none of `secrets` is anywhere in what it printed.
pub(crate) fn sweep_logs(w: World, secrets: &[&str]) {
    let World { served, .. } = w;
    let logs = served.stop();
    assert!(logs.contains("console sign-in"), "the logs were captured");
    for s in secrets {
        assert!(!s.is_empty());
        assert!(!logs.contains(s), "a secret is in the logs: {s}");
    }
}
