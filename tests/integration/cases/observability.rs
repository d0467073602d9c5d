//! The admin listener: Prometheus metrics with bounded labels, health and readiness; and the TLS public listener.

use crate::common::client::{bearer, get};
use crate::common::harness::{Setup, canary, keys, metric_value};
use crate::common::keys::{claims, rand_hex};
use crate::common::mock::Mock;
use crate::common::tls::TestCa;

#[tokio::test]
async fn metrics_count_requests_by_configured_names_only() {
    let mock = Mock::start().await;
    let h = Setup::standard(&mock, &canary("k")).start().await;
    let token = keys().es256.token(&claims("agent-1", ""));
    let auth = bearer(&token);
    assert_eq!(
        get(&h.url("/llm/openai/a"), &[("authorization", &auth)])
            .await
            .0,
        200
    );
    assert_eq!(
        get(&h.url("/llm/openai/b"), &[("authorization", &auth)])
            .await
            .0,
        200
    );
    let random = rand_hex(8);
    assert_eq!(
        get(
            &h.url(&format!("/llm/{random}/x")),
            &[("authorization", &auth)]
        )
        .await
        .0,
        404
    );
    let forged = keys().es256.token(&claims(&format!("ghost-{random}"), ""));
    assert_eq!(
        get(
            &h.url("/llm/openai/a"),
            &[("authorization", &bearer(&forged))]
        )
        .await
        .0,
        401
    );
    let m = h.metrics().await;
    assert_eq!(
        metric_value(
            &m,
            r#"idguard_requests_total{agent="agent-1",node="openai",status_class="2xx"}"#
        ),
        2.0,
        "{m}"
    );
    assert_eq!(
        metric_value(
            &m,
            r#"idguard_requests_total{agent="_none",node="_none",status_class="4xx"}"#
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &m,
            r#"idguard_requests_total{agent="_none",node="openai",status_class="4xx"}"#
        ),
        1.0
    );
    assert_eq!(
        metric_value(
            &m,
            r#"idguard_authz_decisions_total{decision="allow",reason="edge"}"#
        ),
        2.0
    );
    assert_eq!(
        metric_value(
            &m,
            r#"idguard_authz_decisions_total{decision="deny",reason="unknown_agent"}"#
        ),
        1.0
    );
    // The forged token was idguard's refusal; the unknown route (404) was not, nor were the two 200s.
    assert_eq!(
        metric_value(&m, r#"idguard_denials_total{agent="_none",node="openai"}"#),
        1.0,
        "{m}"
    );
    assert_eq!(
        m.lines()
            .filter(|l| l.starts_with("idguard_denials_total{"))
            .count(),
        1,
        "{m}"
    );
    for family in [
        "idguard_request_duration_seconds_bucket{node=\"openai\"",
        "idguard_upstream_ttfb_seconds_bucket{node=\"openai\"",
        "idguard_config_generation 1",
        "idguard_config_reloads_total{result=\"success\"} 1",
        "idguard_config_last_reload_successful 1",
    ] {
        assert!(m.contains(family), "missing {family}");
    }
    assert!(!m.contains(&random), "caller input became a label");
    assert!(!m.contains(&token));
}

#[tokio::test]
async fn health_and_readiness() {
    let mock = Mock::start().await;
    let h = Setup::standard(&mock, &canary("k")).start().await;
    let (status, _, body) = get(&format!("http://{}/healthz", h.admin), &[]).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, _, body) = get(&format!("http://{}/readyz", h.admin), &[]).await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));
    // The admin endpoints are not on the data plane.
    assert_eq!(get(&h.url("/healthz"), &[]).await.0, 404);
}

#[tokio::test]
async fn the_public_listener_serves_tls_with_h2_and_http1() {
    let ca = TestCa::new();
    let cert = ca.server(&["localhost"]);
    let mock = Mock::start().await;
    let h = Setup::standard(&mock, &canary("k"))
        .start_with_tls(Some(&cert))
        .await;
    let token = keys().es256.token(&claims("agent-1", ""));
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca.ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    for h2 in [true, false] {
        let b = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_only();
        let connector = if h2 {
            b.enable_http2().build()
        } else {
            b.enable_http1().build()
        };
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build::<_, http_body_util::Full<bytes::Bytes>>(connector);
        let req = hyper::Request::get(format!(
            "https://localhost:{}/llm/openai/models",
            h.addr.port()
        ))
        .header("authorization", bearer(&token))
        .body(http_body_util::Full::default())
        .unwrap();
        let resp = client.request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.version(),
            if h2 {
                hyper::Version::HTTP_2
            } else {
                hyper::Version::HTTP_11
            }
        );
        assert_eq!(mock.last().header("x-forwarded-proto"), Some("https"));
    }
}
