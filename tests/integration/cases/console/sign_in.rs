//! Signing in: a directory user through PKCE, signing out, a user without an operator, the admin token, the
//! demo's one-time link; the security headers and cookie flags.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use super::*;

/// What every console response carries.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn assert_security_headers(h: &hyper::HeaderMap, what: &str) {
    let v = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(v("content-security-policy"), CSP, "{what}");
    assert_eq!(v("referrer-policy"), "no-referrer", "{what}");
    assert_eq!(v("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(v("cache-control"), "no-store", "{what}");
}

#[tokio::test]
async fn a_directory_operator_signs_in_through_pkce_works_and_signs_out() {
    let w = World::start().await;
    let b = Browser::start("console_directory_sign_in").await;
    sign_in_as(&b, &w, "alice", &w.password).await;
    b.wait_for_path("/console/agents").await;
    assert!(
        b.find("#operator")
            .await
            .text()
            .await
            .unwrap()
            .contains("op-alice")
    );
    assert_eq!(b.find("#role").await.text().await.unwrap(), "editor");
    let table = b.find("#agents").await.text().await.unwrap();
    assert!(
        table.contains("agent-1") && table.contains("agent-2"),
        "{table}"
    );
    assert!(
        b.has("#register-agent").await,
        "an editor sees the register control"
    );
    b.screenshot("agents").await;

    // The session cookie: HttpOnly, SameSite=Strict, scoped to the console, not Secure over plain http.
    let cookie = b.client.get_named_cookie("idg_console").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true));
    assert_eq!(format!("{:?}", cookie.same_site()), "Some(Strict)");
    assert_eq!(cookie.path(), Some("/console"));
    assert_ne!(cookie.secure(), Some(true));
    let session = cookie.value().to_owned();
    let csrf = csrf_of(&b).await;

    // A write through the page goes through the admin API as the operator, audited as a console session.
    b.find("#register-agent summary")
        .await
        .click()
        .await
        .unwrap();
    b.find("#register-agent input[name=name]")
        .await
        .send_keys("Made in the console")
        .await
        .unwrap();
    b.find("#register-agent button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    b.find("#agent-id").await;
    let id = b.find("#agent-id").await.text().await.unwrap();
    assert_eq!(b.path().await, format!("/console/agents/{id}"));
    assert_eq!(
        b.find("#agent-name").await.text().await.unwrap(),
        "Made in the console"
    );
    b.screenshot("registered").await;
    let (status, _, body) = w.api_get(&format!("/admin/v1/audit?id={id}")).await;
    assert_eq!(status, 200, "{body}");
    let audit: serde_json::Value = serde_json::from_str(&body).unwrap();
    let record = &audit["records"][0];
    assert_eq!(record["actor"], "op-alice", "{body}");
    assert_eq!(record["auth"], "console_session", "{body}");
    assert_eq!(record["action"], "create", "{body}");

    // Headers on pages, redirects, static files and 404s alike.
    let with = [("cookie", format!("idg_console={session}"))];
    let with: Vec<(&str, &str)> = with.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for path in [
        "/console/agents",
        "/console/signin",
        "/console/static/console.css",
        "/console/nope",
    ] {
        let (status, headers, body) = get(&w.admin(path), &with).await;
        assert!(status < 500, "{path}: {status}");
        assert_security_headers(&headers, path);
        assert!(
            !body.contains("<script>") && !body.contains(" style="),
            "{path}: inline script or style"
        );
    }

    // Sign-out deletes the session server-side: the old cookie, replayed, is refused.
    b.find("#sign-out").await.click().await.unwrap();
    b.wait_for_path("/console/signin").await;
    b.screenshot("signed-out").await;
    let (status, headers, _) = get(&w.admin("/console/agents"), &with).await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/console/signin");
    let (status, _, _) = w
        .console_post("/console/signout", &session, &format!("csrf={csrf}"))
        .await;
    assert_eq!(status, 303, "a closed session signs out nowhere");
    b.finish().await;
    sweep_logs(w, &[&session, &csrf]);
}

#[tokio::test]
async fn a_directory_user_without_an_operator_is_refused() {
    let w = World::start().await;
    let b = Browser::start("console_not_an_operator").await;
    sign_in_as(&b, &w, "carol", &w.password).await;
    b.wait_for_path("/console/callback").await;
    assert_eq!(
        b.find("#title").await.text().await.unwrap(),
        "Not an operator"
    );
    b.screenshot("").await;
    assert!(
        b.client.get_named_cookie("idg_console").await.is_err(),
        "no session"
    );
    b.goto(&w.admin("/console/agents")).await;
    b.wait_for_path("/console/signin").await;
    // An unknown code (or one replayed) is refused too, and so is a callback this browser did not start.
    let (status, _, body) = get(&w.admin("/console/callback?code=x&state=y"), &[]).await;
    assert_eq!(status, 400, "{body}");
    b.finish().await;
    let password = w.password.clone();
    sweep_logs(w, &[&password]);
}

#[tokio::test]
async fn the_admin_token_signs_in_as_a_break_glass_owner() {
    let w = World::start().await;
    let b = Browser::start("console_admin_token").await;
    b.goto(&w.admin("/console/signin")).await;
    b.find("#break-glass summary").await.click().await.unwrap();
    b.find("#admin-token")
        .await
        .send_keys("not-the-token")
        .await
        .unwrap();
    b.find("#sign-in-token").await.click().await.unwrap();
    assert_eq!(
        b.find("#title").await.text().await.unwrap(),
        "Sign-in failed"
    );
    b.screenshot("refused").await;
    b.goto(&w.admin("/console/signin")).await;
    b.find("#break-glass summary").await.click().await.unwrap();
    b.find("#admin-token")
        .await
        .send_keys(&w.admin_token)
        .await
        .unwrap();
    b.find("#sign-in-token").await.click().await.unwrap();
    b.wait_for_path("/console/agents").await;
    assert_eq!(b.find("#role").await.text().await.unwrap(), "owner");
    assert!(
        !b.client
            .current_url()
            .await
            .unwrap()
            .as_str()
            .contains(&w.admin_token)
    );
    b.screenshot("").await;
    let session = session_cookie(&b).await;
    let csrf = csrf_of(&b).await;

    // CSRF: a POST without the token, with a wrong one, or from another origin is refused; nothing is created.
    for body in [
        "name=agent-x".to_owned(),
        format!("name=agent-x&csrf={csrf}x"),
    ] {
        let (status, _, page) = w.console_post("/console/agents", &session, &body).await;
        assert_eq!(status, 403, "{page}");
        assert!(page.contains("Form refused"), "{page}");
    }
    let (status, _, _) = form(
        &w.admin("/console/agents"),
        &[
            ("cookie", &format!("idg_console={session}")),
            ("origin", "http://evil.example"),
        ],
        &format!("name=agent-x&csrf={csrf}"),
    )
    .await;
    assert_eq!(status, 403);
    let (_, _, list) = w.api_get("/admin/v1/agents?q=agent-x").await;
    assert!(
        list.contains(r#""items":[]"#),
        "nothing was created: {list}"
    );
    // The same form with the token works (an owner may write).
    let (status, headers, page) = w
        .console_post(
            "/console/agents",
            &session,
            &format!("name=agent-x&csrf={csrf}"),
        )
        .await;
    assert_eq!(status, 303, "{page}");
    let location = headers["location"].to_str().unwrap();
    assert!(location.starts_with("/console/agents/agent-"), "{location}");
    b.finish().await;
    let token = w.admin_token.clone();
    sweep_logs(w, &[&token, &session, &csrf]);
}

#[tokio::test]
async fn the_demo_prints_a_one_time_link_to_the_demo_agent() {
    let mut demo = Command::new(crate::common::process::bin())
        .args(["demo", "--listen", "127.0.0.1:0"])
        .env_remove("IDGUARD_ADMIN_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = demo.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line
                .split_whitespace()
                .find(|w| w.contains("/console/signin/once?t="))
            {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let link = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the demo prints a console link");
    let b = Browser::start("console_demo_link").await;
    b.goto(&link).await;
    b.wait_for_path("/console/agents/demo-agent").await;
    assert_eq!(
        b.find("#agent-id").await.text().await.unwrap(),
        "demo-agent"
    );
    assert_eq!(b.find("#role").await.text().await.unwrap(), "owner");
    b.screenshot("").await;
    // Once only.
    b.client.delete_all_cookies().await.unwrap();
    b.goto(&link).await;
    assert_eq!(
        b.find("#title").await.text().await.unwrap(),
        "Sign-in failed"
    );
    b.screenshot("used").await;
    b.finish().await;
    let _ = demo.kill();
    let _ = demo.wait();
}
