//! The admin listener reachable from another machine (issue 12, item 8): TLS with its own certificate, client
//! certificates for operators when configured, both reloaded without a restart; tokens still required on top.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

use super::*;
use crate::common::client::{raw, raw_status};
use crate::common::process::run;
use crate::common::tls::{ServerCert, TestCa};

/// The `[listeners.admin_tls]` table for `cert` (written into `dir` as `admin.crt`/`admin.key`), with `extra`
/// lines.
fn admin_tls(dir: &Path, cert: &ServerCert, extra: &str) -> String {
    let (cert_file, key_file) = cert.write(dir, "admin");
    format!("[listeners.admin_tls]\ncert_file = {cert_file:?}\nkey_file = {key_file:?}\n{extra}")
}

/// One TLS connection to the admin listener, speaking HTTP/1.1.
struct Conn {
    /// The leaf certificate the server presented.
    leaf: CertificateDer<'static>,
    sender: SendRequest<Full<Bytes>>,
}

/// Opens a connection to `addr` trusting `ca`, presenting `client` when given. `Err` when the handshake fails.
async fn connect(
    addr: std::net::SocketAddr,
    ca: &TestCa,
    client: Option<&ServerCert>,
) -> Result<Conn, String> {
    let config = ca.client_config(client);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    Ok(Conn { leaf, sender })
}

impl Conn {
    /// `GET path` with `token`: the status, or `Err` when the connection gives no answer (a TLS 1.3 server refuses
    /// a client certificate after the client's side of the handshake is done: on the first read).
    async fn get(&mut self, path: &str, token: Option<&str>) -> Result<u16, String> {
        self.call("GET", path, token, None)
            .await
            .map(|(status, _)| status)
    }

    /// Any call: the status and the body as JSON (`Null` when it is none), or `Err` when no answer comes.
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value), String> {
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .header("content-type", "application/json");
        if let Some(t) = token {
            req = req.header("authorization", bearer(t));
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(
            Duration::from_secs(5),
            self.sender
                .send_request(req.body(Full::new(Bytes::from(body))).unwrap()),
        )
        .await
        .map_err(|_| "no answer".to_owned())?
        .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }
}

/// A new connection's answer to `GET /admin/v1/agents` with the admin token; `Err` when refused.
async fn admin_answer(
    h: &Harness,
    ca: &TestCa,
    client: Option<&ServerCert>,
) -> Result<u16, String> {
    connect(h.admin, ca, client)
        .await?
        .get("/admin/v1/agents", Some(ADMIN_TOKEN))
        .await
}

fn der(cert: &ServerCert) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).unwrap()
}

#[tokio::test]
async fn the_admin_api_serves_tls_with_its_own_certificate_and_still_needs_a_token() {
    let ca = TestCa::new();
    let cert = ca.server(&["localhost"]);
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("file"));
    let table = admin_tls(s.dir.path(), &cert, "");
    s.raw(&table);
    s.admin_tls_client = Some(ca.client_config(None));
    let h = s.start().await;
    let mut conn = connect(h.admin, &ca, None).await.unwrap();
    assert_eq!(
        conn.leaf,
        der(&cert),
        "the admin listener's own certificate"
    );
    assert_eq!(
        conn.get("/admin/v1/agents", Some(ADMIN_TOKEN)).await,
        Ok(200)
    );
    // TLS is no credential: the API still wants a token, and an agent's is none.
    assert_eq!(conn.get("/admin/v1/agents", None).await, Ok(401));
    let agent = keys().es256.token(&claims("agent-1", ""));
    assert_eq!(conn.get("/admin/v1/agents", Some(&agent)).await, Ok(401));
    assert_eq!(conn.get("/healthz", None).await, Ok(200));
    // Plain HTTP on the admin listener gets no HTTP answer; the data plane is unchanged.
    let plain = raw(h.admin, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert_eq!(raw_status(&plain), 0, "{plain}");
    assert_eq!(file_agent_calls_openai(&h).await, 200);
}

#[tokio::test]
async fn a_required_client_certificate_gates_the_connection_and_tokens_still_decide_the_role() {
    let (ca, clients, rogue) = (TestCa::new(), TestCa::new(), TestCa::new());
    let cert = ca.server(&["localhost"]);
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("file"));
    let client_ca = clients.write_ca(s.dir.path());
    let table = admin_tls(
        s.dir.path(),
        &cert,
        &format!("client_ca_file = {client_ca:?}\n"),
    );
    s.raw(&table);
    let operator_cert = clients.client("operator laptop");
    s.admin_tls_client = Some(ca.client_config(Some(&operator_cert)));
    let h = s.start().await;
    // No certificate, or one another CA signed: no HTTP at all.
    assert!(admin_answer(&h, &ca, None).await.is_err());
    let forged = rogue.client("operator laptop");
    assert!(admin_answer(&h, &ca, Some(&forged)).await.is_err());
    // With one: the API as usual, the token deciding who calls and with which role.
    let mut conn = connect(h.admin, &ca, Some(&operator_cert)).await.unwrap();
    assert_eq!(
        conn.get("/admin/v1/agents", Some(ADMIN_TOKEN)).await,
        Ok(200)
    );
    assert_eq!(conn.get("/admin/v1/agents", None).await, Ok(401));
    let (status, _) = conn
        .call(
            "POST",
            "/admin/v1/operators",
            Some(ADMIN_TOKEN),
            Some(json!({"id": "vera", "role": "viewer"})),
        )
        .await
        .unwrap();
    assert_eq!(status, 201);
    let (status, issued) = conn
        .call(
            "POST",
            "/admin/v1/operators/vera/tokens",
            Some(ADMIN_TOKEN),
            Some(json!({})),
        )
        .await
        .unwrap();
    assert_eq!(status, 201);
    let viewer = issued["token"].as_str().unwrap().to_owned();
    assert_eq!(
        conn.get("/admin/v1/operators", Some(&viewer)).await,
        Ok(403)
    );
    assert_eq!(conn.get("/admin/v1/agents", Some(&viewer)).await, Ok(200));

    // `optional`, applied by a reload: a connection without a certificate is served; a forged one still is not.
    let toml = std::fs::read_to_string(h.setup.config_path())
        .unwrap()
        .replace(
            "client_ca_file",
            "client_auth = \"optional\"\nclient_ca_file",
        );
    assert!(h.reload_with(&toml).await.is_ok());
    within(
        Duration::from_secs(2),
        "client_auth = optional applied",
        async || admin_answer(&h, &ca, None).await == Ok(200),
    )
    .await;
    assert!(admin_answer(&h, &ca, Some(&forged)).await.is_err());
    assert_eq!(admin_answer(&h, &ca, Some(&operator_cert)).await, Ok(200));
}

#[tokio::test]
async fn a_reload_swaps_the_certificate_for_new_connections_and_keeps_open_ones() {
    let ca = TestCa::new();
    let first = ca.server(&["localhost"]);
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("file"));
    let table = admin_tls(s.dir.path(), &first, "");
    s.raw(&table);
    s.admin_tls_client = Some(ca.client_config(None));
    let h = s.start().await;
    let mut open = connect(h.admin, &ca, None).await.unwrap();
    assert_eq!(open.leaf, der(&first));
    assert_eq!(
        open.get("/admin/v1/agents", Some(ADMIN_TOKEN)).await,
        Ok(200)
    );
    // The certificate renewed in place, then a reload (SIGHUP does the same): no restart.
    let second = ca.server(&["localhost"]);
    second.write(h.setup.dir.path(), "admin");
    let toml = std::fs::read_to_string(h.setup.config_path()).unwrap();
    assert!(h.reload_with(&toml).await.is_ok());
    within(
        Duration::from_secs(2),
        "the new certificate served",
        async || connect(h.admin, &ca, None).await.unwrap().leaf == der(&second),
    )
    .await;
    let mut fresh = connect(h.admin, &ca, None).await.unwrap();
    assert_eq!(
        fresh.get("/admin/v1/agents", Some(ADMIN_TOKEN)).await,
        Ok(200)
    );
    // The connection opened before the swap is still served, on its first certificate.
    assert_eq!(
        open.get("/admin/v1/agents", Some(ADMIN_TOKEN)).await,
        Ok(200)
    );
    // A broken file at the next reload: logged, and the certificate in force is kept.
    std::fs::write(h.setup.dir.path().join("admin.crt"), "not a certificate\n").unwrap();
    assert!(h.reload_with(&toml).await.is_ok());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut after = connect(h.admin, &ca, None).await.unwrap();
    assert_eq!(after.leaf, der(&second));
    assert_eq!(
        after.get("/admin/v1/agents", Some(ADMIN_TOKEN)).await,
        Ok(200)
    );
}

#[test]
fn admin_tls_settings_are_checked_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let cert = ca.server(&["localhost"]);
    let base = Setup::new().toml();
    for (extra, field) in [
        (
            "client_auth = \"required\"\n",
            "listeners.admin_tls.client_auth",
        ),
        (
            "client_ca_file = \"missing.pem\"\n",
            "listeners.admin_tls.client_ca_file",
        ),
        ("client_auth = \"sometimes\"\n", "client_auth"),
        ("colour = 1\n", "colour"),
    ] {
        let config = dir.path().join("idguard.toml");
        std::fs::write(
            &config,
            format!("{base}\n{}", admin_tls(dir.path(), &cert, extra)),
        )
        .unwrap();
        let (code, out, err) = run(&["check", "--config", config.to_str().unwrap()], &[], "");
        assert_ne!(code, 0, "{extra}: {out}");
        assert!(format!("{out}{err}").contains(field), "{extra}: {out}{err}");
    }
    std::fs::remove_file(dir.path().join("admin.key")).unwrap();
    let config = dir.path().join("idguard.toml");
    std::fs::write(
        &config,
        format!(
            "{base}\n[listeners.admin_tls]\ncert_file = \"admin.crt\"\nkey_file = \"admin.key\"\n"
        ),
    )
    .unwrap();
    let (code, out, err) = run(&["check", "--config", config.to_str().unwrap()], &[], "");
    assert_ne!(code, 0);
    assert!(
        format!("{out}{err}").contains("listeners.admin_tls.key_file"),
        "{out}{err}"
    );
}

#[tokio::test]
async fn serve_swaps_the_admin_certificate_on_sighup_and_drains_tls_connections_on_sigterm() {
    use crate::common::process::Served;
    let ca = TestCa::new();
    let first = ca.server(&["localhost"]);
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("file"));
    let table = admin_tls(s.dir.path(), &first, "");
    s.raw(&table);
    std::fs::write(s.config_path(), s.toml()).unwrap();
    let served = Served::start(
        &s.config_path(),
        &[
            ("IDGUARD_MASTER_KEY", s.master.as_str()),
            ("IDGUARD_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
    );
    let mut open = connect(served.admin, &ca, None).await.unwrap();
    assert_eq!(open.leaf, der(&first));
    assert_eq!(
        open.get("/admin/v1/agents", Some(ADMIN_TOKEN)).await,
        Ok(200)
    );
    let second = ca.server(&["localhost"]);
    second.write(s.dir.path(), "admin");
    served.signal("HUP");
    within(
        Duration::from_secs(3),
        "SIGHUP swapped the certificate",
        async || connect(served.admin, &ca, None).await.unwrap().leaf == der(&second),
    )
    .await;
    assert_eq!(
        open.get("/admin/v1/agents", Some(ADMIN_TOKEN)).await,
        Ok(200)
    );
    // SIGTERM: an idle keep-alive connection does not hold the drain; the process stops promptly.
    let started = std::time::Instant::now();
    let logs = served.stop();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(logs.contains("\"admin_tls\":true"), "{logs}");
    assert!(logs.contains("new connections use them"), "{logs}");
    assert!(
        open.get("/healthz", None).await.is_err(),
        "closed at shutdown"
    );
}

#[tokio::test]
async fn forwarded_headers_change_nothing_on_the_admin_listener() {
    // No admin decision depends on the client's address or scheme: forged proxy headers neither authenticate nor
    // reach the audit record, and a proxy's client-certificate header is no certificate.
    let (_mock, h, admin) = standard().await;
    let forged = [
        ("x-forwarded-for", "6.6.6.6"),
        ("forwarded", "for=6.6.6.7;proto=https"),
        ("x-real-ip", "6.6.6.8"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-client-cert", "Hash=6666;Subject=\"CN=owner\""),
        ("x-ssl-client-verify", "SUCCESS"),
    ];
    let mut anonymous = AdminClient::new(h.admin, "");
    let mut proxied = admin.clone();
    for (name, value) in forged {
        anonymous = anonymous.header(name, value);
        proxied = proxied.header(name, value);
    }
    assert_eq!(anonymous.get("/admin/v1/agents").await.0, 401);
    let (status, _, agent) = proxied
        .post("/admin/v1/agents", json!({"name": "via proxy"}))
        .await;
    assert_eq!(status, 201);
    let (_, _, page) = admin
        .get(&format!(
            "/admin/v1/audit?id={}",
            agent["id"].as_str().unwrap()
        ))
        .await;
    let record = page["records"][0].to_string();
    assert!(record.contains("\"actor\":\"admin\""), "{record}");
    assert!(
        !record.contains("6.6.6") && !record.contains("6666"),
        "{record}"
    );
}

#[tokio::test]
async fn the_consoles_cookies_are_secure_under_tls() {
    let ca = TestCa::new();
    let cert = ca.server(&["localhost"]);
    let mock = Mock::start().await;
    let mut s = Setup::standard(&mock, &canary("file"));
    let table = admin_tls(s.dir.path(), &cert, "");
    s.raw(&table);
    s.admin_tls_client = Some(ca.client_config(None));
    let h = s.start().await;
    let mut conn = connect(h.admin, &ca, None).await.unwrap();
    conn.sender.ready().await.unwrap();
    let req = hyper::Request::get("/console/signin")
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = conn.sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap();
    for flag in ["; Secure", "; HttpOnly", "; SameSite=Strict"] {
        assert!(cookie.contains(flag), "{flag}: {cookie}");
    }
}
