//! The canary sweep over the identity service: client secrets, passwords, assertions and every token it issues or exchanges.

use super::*;

/// The identity service's secrets and tokens under the same sweep: client secrets, a user's password, a
/// client's private key, an OAuth client secret, and every token issued (agent, user, exchanged). Each may
/// appear only where it belongs: a token in the token response to its own client and at the one upstream meant
/// to receive it.
#[tokio::test]
async fn k01_identity_secrets_and_tokens_reach_no_sink() {
    use crate::common::client::form;
    use crate::common::idp::{
        access_token, argon2id, assertion, basic, enc, exchange_form, jwt_form, secret_hash,
    };

    let (llm, crm, agent_ep, provider, partner) = (
        Mock::start().await,
        Mock::start().await,
        Mock::start().await,
        Mock::start().await,
        Mock::start().await,
    );
    let [s_llm, s_agent, s_web, s_password, s_oauth, s_wrong] = [
        "llm",
        "agentsecret",
        "websecret",
        "password",
        "oauth",
        "wrong",
    ]
    .map(canary);
    let s_ext_token = canary("exttoken");
    provider.set(Behavior::Status(
        200,
        format!(r#"{{"access_token":"{s_ext_token}","expires_in":600}}"#),
    ));
    // The service and the OAuth node's API hand back the token they received, in every form they can.
    crm.set(Behavior::Reflect);
    partner.set(Behavior::Reflect);
    let issuer = "https://idguard.sweep.test";
    let k = keys();
    let mut s = Setup::new();
    s.identity = Some(format!("issuer = \"{issuer}\"\n"));
    s.credential("c-llm", "llm", &s_llm)
        .credential("c-oauth", "external", &s_oauth);
    s.node(
        "llm",
        "openai",
        &format!("http://{}/v1", llm.addr),
        "style = \"bearer\"",
        "c-llm",
    );
    s.raw(&format!(
        "[[external]]\nid = \"partner\"\nupstream = \"http://{}/api\"\nstyle = \"bearer\"\ncredential = \"c-oauth\"\n\
         oauth = {{ token_url = \"http://{}/token\", client_id = \"idg\" }}\n\n\
         [[agents]]\nid = \"agent-s\"\nsecrets = [{{ id = \"s1\", hash = \"{}\" }}]\n\n\
         [[agents]]\nid = \"agent-k\"\nauth = \"private_key_jwt\"\nendpoint = \"http://{}/agent\"\n\
         keys = [{{ id = \"es-1\", jwk = {{ kty = \"EC\", crv = \"P-256\", x = {}, y = {} }} }}]\n\n\
         [[enterprise]]\nid = \"crm\"\naudience = \"urn:svc:crm\"\nupstream = \"http://{}/crm\"\npermissions = [{{ scope = \"crm.read\" }}]\n\n\
         [[users]]\nid = \"alice\"\npassword_hash = \"{}\"\n\n\
         [[clients]]\nid = \"web\"\nredirect_uris = [\"http://127.0.0.1:9/cb\"]\nusers = [\"alice\"]\nsecrets = [{{ id = \"w1\", hash = \"{}\" }}]\n\n\
         [[inbound]]\nclient = \"web\"\nagent = \"agent-k\"\nscopes = [\"agent.access\"]\n",
        partner.addr,
        provider.addr,
        secret_hash(&s_agent),
        agent_ep.addr,
        k.es256.jwk["x"],
        k.es256.jwk["y"],
        crm.addr,
        argon2id(&s_password),
        secret_hash(&s_web),
    ));
    for (agent, node, scopes) in [
        ("agent-s", "openai", "[]"),
        ("agent-s", "partner", "[]"),
        ("agent-s", "crm", "[\"crm.read\"]"),
        ("agent-k", "crm", "[\"crm.read\"]"),
    ] {
        s.raw(&format!(
            "[[outbound]]\nagent = \"{agent}\"\nnode = \"{node}\"\nscopes = {scopes}\n"
        ));
    }
    std::fs::write(s.config_path(), s.toml()).unwrap();
    // The in-process harnesses' fingerprint key, so the hashes above match.
    let data = s.dir.path().join("idguard-data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("fingerprint.key"),
        URL_SAFE_NO_PAD.encode(crate::common::harness::FINGERPRINT_KEY),
    )
    .unwrap();
    let key_file = s.dir.path().join("master.key");
    std::fs::write(&key_file, &s.master).unwrap();
    let served = Served::start(
        &s.config_path(),
        &[
            ("IDGUARD_MASTER_KEY_FILE", key_file.to_str().unwrap()),
            ("IDGUARD_LOG", "trace"),
        ],
    );
    let base = format!("http://{}", served.public);
    let token_url = format!("{base}/oauth2/token");

    // Responses that legitimately carry a token go to `issued`; everything else to `responses`.
    let mut responses = String::new();
    let mut issued = Vec::new();
    let mut keep = |(status, headers, body): (u16, hyper::HeaderMap, String)| {
        responses.push_str(&format!("{status} {headers:?} {body}\n"));
        status
    };
    // Failures first: wrong secrets (Basic and post), a bad password, an unknown client.
    assert_eq!(
        keep(
            form(
                &token_url,
                &[("authorization", &basic("agent-s", &s_wrong))],
                "grant_type=client_credentials"
            )
            .await
        ),
        401
    );
    assert_eq!(
        keep(
            form(
                &token_url,
                &[],
                &format!("grant_type=client_credentials&client_id=ghost&client_secret={s_agent}")
            )
            .await
        ),
        401
    );
    assert_eq!(
        keep(
            form(
                &token_url,
                &[("authorization", &basic("agent-s", &s_agent))],
                &format!("grant_type=client_credentials&client_secret={s_agent}&client_id=agent-s")
            )
            .await
        ),
        400
    );
    assert_eq!(
        keep(
            form(
                &format!("{token_url}?client_secret={s_agent}"),
                &[],
                "grant_type=client_credentials"
            )
            .await
        ),
        400
    );
    let login = format!(
        "response_type=code&client_id=web&redirect_uri={}&code_challenge={}&code_challenge_method=S256",
        enc("http://127.0.0.1:9/cb"),
        "a".repeat(43)
    );
    let (_, page_headers, page) =
        crate::common::client::get(&format!("{base}/oauth2/authorize?{login}"), &[]).await;
    let (cookie, csrf) = crate::common::idp::sign_in_carry(&page_headers, &page);
    assert_eq!(
        keep(
            form(
                &format!("{base}/oauth2/authorize"),
                &[("cookie", &cookie)],
                &format!("{login}&csrf={csrf}&username=alice&password={s_wrong}")
            )
            .await
        ),
        401
    );

    // Successes.
    let (status, _, body) = form(
        &token_url,
        &[("authorization", &basic("agent-s", &s_agent))],
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let agent_token = access_token(&body);
    issued.push(body);
    let a = assertion(&k.es256, "agent-k", issuer, |_| {});
    let (status, _, body) = form(
        &token_url,
        &[],
        &jwt_form("grant_type=client_credentials", &a),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let agentk_token = access_token(&body);
    issued.push(body);
    let (status, _, body) = form(
        &token_url,
        &[("authorization", &basic("web", &s_web))],
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let web_token = access_token(&body);
    issued.push(body);
    let (status, _, body) = form(
        &token_url,
        &[],
        &exchange_form(&agent_token, None, Some("urn:svc:crm"), None),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let direct_exchanged = access_token(&body);
    issued.push(body);
    let g = bearer(&agent_token);
    assert_eq!(
        keep(
            get(
                &format!("{base}/llm/openai/models"),
                &[("authorization", &g)]
            )
            .await
        ),
        200
    );
    assert_eq!(
        keep(
            get(
                &format!("{base}/ext/partner/items"),
                &[("authorization", &g)]
            )
            .await
        ),
        200
    );
    assert_eq!(
        keep(get(&format!("{base}/svc/crm/a"), &[("authorization", &g)]).await),
        200
    );
    assert_eq!(
        keep(
            get(
                &format!("{base}/svc/crm/b"),
                &[("authorization", &bearer(&agentk_token))]
            )
            .await
        ),
        200
    );
    assert_eq!(
        keep(
            get(
                &format!("{base}/agents/agent-k/t"),
                &[("authorization", &bearer(&web_token))]
            )
            .await
        ),
        200
    );
    assert_eq!(
        keep(
            get(
                &format!("{base}/agents/agent-k/t"),
                &[("authorization", &g)]
            )
            .await
        ),
        401
    );
    assert_eq!(
        keep(
            form(
                &format!("{base}/oauth2/introspect"),
                &[("authorization", &basic("agent-s", &s_agent))],
                &format!("token={agent_token}")
            )
            .await
        ),
        200
    );
    assert_eq!(
        keep(
            form(
                &format!("{base}/oauth2/revoke"),
                &[("authorization", &basic("agent-s", &s_agent))],
                &format!("token={agent_token}")
            )
            .await
        ),
        200
    );
    assert_eq!(
        keep(
            get(
                &format!("{base}/llm/openai/models"),
                &[("authorization", &g)]
            )
            .await
        ),
        401
    );
    let exchanged: Vec<String> = crm
        .recorded()
        .iter()
        .map(|r| {
            r.header("authorization")
                .unwrap()
                .strip_prefix("Bearer ")
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(exchanged.len(), 2);

    let metrics = get(&format!("http://{}/metrics", served.admin), &[])
        .await
        .2;
    let logs = served.stop();
    assert!(
        logs.contains(r#""reason":"bad_client_secret""#),
        "A01 log reason"
    );
    assert!(
        logs.contains(r#""reason":"unknown_client""#),
        "A02 log reason"
    );
    assert!(logs.contains(r#""reason":"exchange_ok""#), "D01 log line");

    let mut everything: Vec<(String, String)> = vec![
        ("stored llm key".into(), s_llm.clone()),
        ("agent client secret".into(), s_agent.clone()),
        ("web client secret".into(), s_web.clone()),
        ("alice password".into(), s_password.clone()),
        ("oauth client secret".into(), s_oauth.clone()),
        ("wrong secret".into(), s_wrong.clone()),
        ("external oauth token".into(), s_ext_token.clone()),
        (
            "client private key".into(),
            STANDARD.encode(&k.es256.private_der),
        ),
    ];
    let tokens = [
        ("token agent", agent_token.clone()),
        ("token agent-k", agentk_token.clone()),
        ("token web", web_token.clone()),
        ("token exchanged direct", direct_exchanged.clone()),
        ("token exchanged 0", exchanged[0].clone()),
        ("token exchanged 1", exchanged[1].clone()),
        ("token assertion", a.clone()),
    ];
    for (name, t) in &tokens {
        everything.push(((*name).into(), t.clone()));
        everything.push((
            format!("{name} signature"),
            t.rsplit('.').next().unwrap().to_owned(),
        ));
    }
    let mut leaks = Vec::new();
    leaks.extend(find_leak("logs", &logs, &everything));
    leaks.extend(find_leak("responses", &responses, &everything));
    leaks.extend(find_leak("metrics", &metrics, &everything));
    // A token response carries only its own token.
    for body in &issued {
        let own = access_token(body);
        let rest = body.replace(&own, "");
        leaks.extend(find_leak("token response", &rest, &everything));
    }
    // Upstreams: each sees only what is meant for it, where it is meant to be.
    leaks.extend(upstream_leaks(
        "llm",
        &llm,
        &[("authorization", format!("Bearer {s_llm}"))],
        &everything,
    ));
    leaks.extend(upstream_leaks(
        "partner",
        &partner,
        &[("authorization", format!("Bearer {s_ext_token}"))],
        &everything,
    ));
    let crm_allowed: Vec<(&str, String)> = exchanged
        .iter()
        .map(|t| ("authorization", format!("Bearer {t}")))
        .collect();
    leaks.extend(upstream_leaks("crm", &crm, &crm_allowed, &everything));
    leaks.extend(upstream_leaks(
        "agent endpoint",
        &agent_ep,
        &[("x-idguard-subject-token", web_token.clone())],
        &everything,
    ));
    // The provider sees the OAuth client secret in Basic, and nothing else of ours.
    leaks.extend(upstream_leaks(
        "oauth provider",
        &provider,
        &[("authorization", basic("idg", &s_oauth))],
        &everything,
    ));
    assert!(leaks.is_empty(), "leaks found:\n{}", leaks.join("\n"));
}
