//! Validation: every rule refuses with the path of its field; a good file becomes the expected snapshot.

use super::*;
use crate::raw::RawConfig;
use crate::snapshot::KeySource;

const KEY: &str = "1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

fn build(toml: &str) -> Result<Snapshot, Vec<String>> {
    let raw: RawConfig = toml::from_str(toml).map_err(|e| vec![e.to_string()])?;
    build_raw(raw)
}

/// [`build`] for a file already parsed.
fn build_raw(raw: RawConfig) -> Result<Snapshot, Vec<String>> {
    build_bound(raw, None)
}

/// [`build_raw`] once the public listener is bound at `public_addr`.
fn build_bound(
    raw: RawConfig,
    public_addr: Option<std::net::SocketAddr>,
) -> Result<Snapshot, Vec<String>> {
    // A directory per call: tests run in parallel and must not rewrite each other's JWKS file mid-read.
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("idguard-validate-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("jwks.json"),
        r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#,
    )
    .unwrap();
    let keys = MasterKeys::parse(KEY).unwrap();
    let env = |name: &str| (name == "SET_VAR").then(|| "from-env".to_owned());
    let ctx = BuildContext {
        base_dir: dir,
        master_keys: Some(&keys),
        env: &env,
        generation: 7,
        public_addr,
    };
    validate(raw, &ctx).map_err(|e| {
        e.0.iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect()
    })
}

fn sealed(id: &str, value: &str) -> String {
    MasterKeys::parse(KEY)
        .unwrap()
        .seal(id, value.as_bytes())
        .unwrap()
}

/// A valid file whose `c1` value was sealed for `sealed_for`.
fn file(sealed_for: &str) -> String {
    format!(
        r#"
[[issuers]]
issuer = "https://issuer"
audience = "proxy"
jwks_file = "jwks.json"

[[agents]]
id = "a1"

[[credentials]]
id = "c1"
kind = "llm"
sealed = "{}"

[[credentials]]
id = "c2"
kind = "external"
env = "SET_VAR"

[[llm]]
id = "openai"
upstream = "https://api.openai.com/v1/"
style = "bearer"
credential = "c1"

[[external]]
id = "weather"
upstream = "http://127.0.0.1:9000"
style = "query"
query = "appid"
credential = "c2"

[[outbound]]
agent = "a1"
node = "openai"
scopes = ["llm.use", "llm.use"]
"#,
        sealed(sealed_for, "sk-1")
    )
}

fn good() -> String {
    file("c1")
}

#[test]
fn a_good_file_builds_the_expected_snapshot() {
    let s = build(&good()).unwrap();
    assert_eq!(s.generation, 7);
    assert_eq!(s.settings.public_addr.to_string(), "0.0.0.0:8080");
    assert_eq!(s.settings.admin_addr.to_string(), "127.0.0.1:9090");
    let node = &s.nodes["openai"];
    assert_eq!(node.upstream.base_path, "/v1");
    assert_eq!(node.upstream.authority, "api.openai.com");
    assert_eq!(s.credentials["c1"].value.as_ref().unwrap().expose(), "sk-1");
    assert_eq!(
        s.credentials["c2"].value.as_ref().unwrap().expose(),
        "from-env"
    );
    assert_eq!(
        s.edges["openai"]["a1"].required_scopes.len(),
        1,
        "duplicate scopes fold"
    );
    assert_eq!(s.issuers[0].accepted_typ, vec!["at+jwt"]);
    assert_eq!(s.issuers[0].leeway_seconds, 30);
    assert!(s.credential_problems().is_empty());
}

fn errors_of(toml: &str) -> Vec<String> {
    build(toml)
        .err()
        .unwrap_or_else(|| panic!("expected errors for:\n{toml}"))
}

#[test]
fn every_error_is_collected_with_its_path() {
    let bad = good()
        .replace("id = \"a1\"", "id = \"a 1\"")
        .replace("https://api.openai.com/v1/", "http://api.openai.com/v1")
        .replace("style = \"query\"", "style = \"qurey\"");
    let errs = errors_of(&bad);
    let want = [
        "agents[0].id: \"a 1\" is not a valid id",
        "llm[0].upstream: plain http is only allowed to loopback upstreams",
        "external[0].style: must be one of",
        "external[0].query: only applies to style = \"query\"",
        "outbound[0].agent: no agent has id \"a1\"",
    ];
    for w in want {
        assert!(
            errs.iter().any(|e| e.starts_with(w)),
            "missing {w:?} in {errs:#?}"
        );
    }
}

#[test]
fn individual_rules() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "kind = \"external\"",
            "kind = \"other\"",
            "credentials[1].kind: must be \"llm\" or \"external\"",
        ),
        (
            "env = \"SET_VAR\"",
            "env = \"SET VAR\"",
            "credentials[1].env: must be an environment variable name",
        ),
        (
            "credential = \"c1\"",
            "credential = \"c2\"",
            "llm[0].credential: credential \"c2\" has kind \"external\"",
        ),
        (
            "credential = \"c1\"",
            "credential = \"nope\"",
            "llm[0].credential: no credential has id \"nope\"",
        ),
        (
            "https://api.openai.com/v1/",
            "https://user:pw@api.openai.com/",
            "llm[0].upstream: must not carry user information",
        ),
        (
            "https://api.openai.com/v1/",
            "https://api.openai.com/v1?key=x",
            "llm[0].upstream: must not carry a query",
        ),
        (
            "https://api.openai.com/v1/",
            "file:///etc/passwd",
            "llm[0].upstream:",
        ),
        (
            "https://api.openai.com/v1/",
            "https://api.openai.com/a/../b",
            "llm[0].upstream: the base path must be plain",
        ),
        (
            "id = \"openai\"",
            "id = \"..\"",
            "llm[0].id: \"..\" is not a valid id",
        ),
        (
            "id = \"weather\"",
            "id = \"openai\"",
            "external[0].id: node id \"openai\" is already used",
        ),
        (
            "jwks_file = \"jwks.json\"",
            "jwks_file = \"missing.json\"",
            "issuers[0].jwks_file: cannot read",
        ),
        (
            "jwks_file = \"jwks.json\"",
            "jwks_url = \"http://insecure/jwks\"",
            "issuers[0].jwks_url: must be an https:// URL",
        ),
        (
            "audience = \"proxy\"",
            "audience = \"proxy\"\nleeway_seconds = 61",
            "issuers[0].leeway_seconds: must be at most 60",
        ),
        (
            "scopes = [\"llm.use\", \"llm.use\"]",
            "scopes = [\"has space\"]",
            "outbound[0].scopes[0]: a scope is",
        ),
        (
            "style = \"bearer\"",
            "style = \"bearer\"\nmethods = [\"TRACE\"]",
            "llm[0].methods[0]: TRACE and CONNECT are never proxied",
        ),
        (
            "style = \"bearer\"",
            "style = \"header\"",
            "llm[0].header: is required when style = \"header\"",
        ),
    ];
    for (from, to, want) in cases {
        let text = good().replacen(from, to, 1);
        assert!(text.contains(to), "replacement {from:?} did not apply");
        let errs = errors_of(&text);
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "{to:?}: missing {want:?} in {errs:#?}"
        );
    }
    // Both value sources, or neither.
    let both = good().replace(
        "env = \"SET_VAR\"",
        "env = \"SET_VAR\"\nsealed = \"idg1.AAAA\"",
    );
    assert!(
        errors_of(&both)
            .iter()
            .any(|e| e.starts_with("credentials[1]: set exactly one of sealed and env"))
    );
    // Duplicate edges and agents.
    let dup = format!(
        "{}\n[[outbound]]\nagent = \"a1\"\nnode = \"openai\"\n\n[[agents]]\nid = \"a1\"\n",
        good()
    );
    let errs = errors_of(&dup);
    assert!(errs.iter().any(|e| e.starts_with("outbound[1]: agent \"a1\" → node \"openai\" is declared twice")));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("agents[1].id: agent id \"a1\" is declared twice"))
    );
}

#[test]
fn unopenable_credentials_do_not_fail_the_file() {
    // A value sealed for another credential id (moved between records) loads, but is reported unavailable.
    let s = build(&file("c9")).unwrap();
    let problems = s.credential_problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].path, "credentials[id=c1]");
    assert!(
        problems[0].message.contains("does not open"),
        "{problems:?}"
    );
    let s = build(&good().replace("env = \"SET_VAR\"", "env = \"UNSET_VAR\"")).unwrap();
    assert!(
        s.credential_problems()[0]
            .message
            .contains("UNSET_VAR is not set")
    );
}

#[test]
fn locate_finds_lines_for_paths() {
    let text = "[listeners]\npublic = \"x\"\n\n[[llm]]\nid = \"a\"\n\n[[llm]]\nid = \"b\"\nupstream = \"u\"\n";
    assert_eq!(crate::reload::locate(text, "listeners.public"), Some(2));
    assert_eq!(crate::reload::locate(text, "llm[1].upstream"), Some(9));
    assert_eq!(crate::reload::locate(text, "llm[1]"), Some(7));
    assert_eq!(crate::reload::locate(text, "llm[5].id"), None);
}

#[test]
fn directory_tree_and_agent_permission() {
    let text = format!(
        "{}\n{}",
        good(),
        r#"
[[organizations]]
id = "acme"

[[organizations]]
id = "eng"
parent = "acme"

[[organizations]]
id = "platform"
parent = "eng"

[[groups]]
id = "support"

[[users]]
id = "alice"
organization = "platform"

[[users]]
id = "bob"
groups = ["support"]

[[users]]
id = "carol"

[[agents]]
id = "manual-agent"
permission = { mode = "manual", organizations = ["eng"], groups = ["support"] }
"#
    );
    let s = build(&text).unwrap();
    let auto = &s.agents["a1"].permission;
    assert_eq!(
        (&*auto.scope, auto.manual, auto.name.as_str()),
        ("agent.access", false, "a1 access")
    );
    assert!(
        auto.granted_to("carol", &s.directory),
        "auto mode: every directory user"
    );
    assert!(
        !auto.granted_to("mallory", &s.directory),
        "never a user outside the directory"
    );
    let manual = &s.agents["manual-agent"].permission;
    assert!(
        manual.granted_to("alice", &s.directory),
        "through a parent unit of her unit"
    );
    assert!(manual.granted_to("bob", &s.directory), "through a group");
    assert!(!manual.granted_to("carol", &s.directory));

    for (bad, want) in [
        (
            "[[organizations]]\nid = \"x\"\nparent = \"y\"\n\n[[organizations]]\nid = \"y\"\nparent = \"x\"\n",
            "cycle",
        ),
        (
            "[[users]]\nid = \"u\"\ngroups = [\"nope\"]\n",
            "users[0].groups[0]: no group has id",
        ),
        (
            "[[agents]]\nid = \"z\"\npermission = { users = [\"carol\"] }\n",
            "apply only in mode = \"manual\"",
        ),
        (
            "[[agents]]\nid = \"z\"\npermission = { mode = \"sometimes\" }\n",
            "must be \"auto\" or \"manual\"",
        ),
        (
            "[[agents]]\nid = \"z\"\npermission = { mode = \"manual\", users = [\"ghost\"] }\n",
            "no user has id \"ghost\"",
        ),
    ] {
        let errs = errors_of(&format!("{}\n{bad}", good()));
        assert!(
            errs.iter().any(|e| e.contains(want)),
            "{want:?} not in {errs:#?}"
        );
    }
}

#[test]
fn identity_settings_and_their_objects_are_checked_by_field() {
    let bad = format!(
        r#"{}
[identity]
issuer = "ftp://idguard.example.com"
access_token_ttl_seconds = 5
exchange_max_ttl_seconds = 100000
max_act_depth = 0

[[llm]]
id = "bad-oauth"
upstream = "https://api.example.com"
style = "bearer"
credential = "c1"
oauth = {{ token_url = "http://evil.example.com/token", client_id = "x", scopes = ["has space"] }}

[[enterprise]]
id = "svc"
audience = "urn:svc"
exchange = {{ token_url = "https://as.example.com/token", client_id = "idg" }}

[[users]]
id = "u1"
password_hash = "plaintext"
"#,
        file("c1")
    );
    let errors = build(&bad).unwrap_err();
    for path in [
        "identity.issuer:",
        "identity.access_token_ttl_seconds:",
        "identity.exchange_max_ttl_seconds:",
        "identity.max_act_depth:",
        "llm[1].oauth:",
        "llm[1].oauth.token_url:",
        "llm[1].oauth.scopes[0]:",
        "enterprise[0].exchange:",
        "users[0].password_hash:",
    ] {
        assert!(
            errors.iter().any(|e| e.starts_with(path)),
            "{path} missing from {errors:#?}"
        );
    }
    // A good [identity] adds idguard's own issuer with keys handed over in-process.
    let good = format!(
        "{}\n[identity]\nissuer = \"https://idguard.example.com/\"\n",
        file("c1")
    );
    let snapshot = build(&good).unwrap();
    let identity = snapshot.identity.as_ref().unwrap();
    assert_eq!(identity.issuer, "https://idguard.example.com");
    assert_eq!(identity.audience, "urn:idguard:proxy");
    assert_eq!(
        identity.token_endpoint(),
        "https://idguard.example.com/oauth2/token"
    );
    let local = snapshot.issuers.last().unwrap();
    assert_eq!(local.keys, KeySource::Local);
    assert_eq!(local.issuer, "https://idguard.example.com");
}

#[test]
fn an_auto_issuer_names_the_bound_public_listener_and_a_written_one_stays_exact() {
    let parse = |t: &str| toml::from_str::<RawConfig>(t).unwrap();
    let bound: std::net::SocketAddr = "127.0.0.1:40123".parse().unwrap();
    for identity in ["", "issuer = \"auto\""] {
        let text = format!(
            "{}\n[listeners]\npublic = \"127.0.0.1:0\"\n\n[identity]\n{identity}\n",
            file("c1")
        );
        // Before the bind (`idguard check`, the first build) the file's address stands in.
        let before = build(&text).unwrap();
        assert_eq!(before.identity.unwrap().issuer, "http://127.0.0.1:0");
        let s = build_bound(parse(&text), Some(bound)).unwrap();
        let id = s.identity.as_ref().unwrap();
        assert_eq!(id.issuer, "http://127.0.0.1:40123", "{identity:?}");
        assert!(id.issuer_derived);
        assert_eq!(s.issuers.last().unwrap().issuer, "http://127.0.0.1:40123");
    }
    // A written issuer is kept as written, whatever the listener got.
    let text = format!(
        "{}\n[listeners]\npublic = \"127.0.0.1:0\"\n\n[identity]\nissuer = \"http://idg.test:8080/\"\n",
        file("c1")
    );
    let s = build_bound(parse(&text), Some(bound)).unwrap();
    let id = s.identity.as_ref().unwrap();
    assert_eq!(
        (id.issuer.as_str(), id.issuer_derived),
        ("http://idg.test:8080", false)
    );
    // Every address (the default listener) is not one a client reaches: the field says what to write.
    let errors = build(&format!("{}\n[identity]\n", file("c1"))).unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("identity.issuer: is omitted or \"auto\"")
                && e.contains("0.0.0.0:8080")),
        "{errors:#?}"
    );
    // The assertion settings: defaults, and the lifetime's range.
    let s = build(&format!(
        "{}\n[identity]\nissuer = \"https://i\"\n",
        file("c1")
    ))
    .unwrap();
    let id = s.identity.unwrap();
    assert!(id.accept_token_endpoint_audience);
    assert_eq!(id.max_assertion_lifetime.as_secs(), 3600);
    let errors = build(&format!(
        "{}\n[identity]\nissuer = \"https://i\"\nmax_assertion_lifetime_seconds = 100000\n",
        file("c1")
    ))
    .unwrap_err();
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("identity.max_assertion_lifetime_seconds:")),
        "{errors:#?}"
    );
}

#[test]
fn check_tells_a_missing_master_key_from_other_credential_failures_by_type() {
    // Every credential opened: nothing is missing for lack of a key.
    let s = build(&good()).unwrap();
    assert!(s.unopened_only_for_lack_of_key());
    // A value sealed for another credential is a real failure, even though it is a sealing error too.
    assert!(!build(&file("c9")).unwrap().unopened_only_for_lack_of_key());
    // An unset environment variable is a real failure.
    let s = build(&good().replace("env = \"SET_VAR\"", "env = \"UNSET_VAR\"")).unwrap();
    assert!(!s.unopened_only_for_lack_of_key());
}

mod destinations;
#[test]
fn connection_limits_have_defaults_and_are_bounded_by_field() {
    let l = build(&good()).unwrap().settings.limits;
    assert_eq!(l.first_bytes_timeout, std::time::Duration::from_secs(10));
    assert_eq!(l.http2_idle_timeout, std::time::Duration::from_secs(60));
    assert_eq!(
        l.http2_keepalive_interval,
        std::time::Duration::from_secs(30)
    );
    assert_eq!(
        l.http2_keepalive_timeout,
        std::time::Duration::from_secs(20)
    );
    assert_eq!(l.body_idle_timeout, std::time::Duration::from_secs(30));
    assert_eq!(
        (l.max_connections, l.max_connections_per_ip),
        (10_000, 1_000)
    );

    let set = format!(
        "{}\n[limits]\nmax_connections = 20\nmax_connections_per_ip = 0\nbody_idle_timeout_ms = 250\n",
        good()
    );
    let l = build(&set).unwrap().settings.limits;
    assert_eq!((l.max_connections, l.max_connections_per_ip), (20, 0));
    assert_eq!(l.body_idle_timeout, std::time::Duration::from_millis(250));

    let bad = format!(
        "{}\n[limits]\nmax_connections = 0\nfirst_bytes_timeout_ms = 5\nhttp2_idle_timeout_ms = 0\n\
         http2_keepalive_interval_ms = 99\nhttp2_keepalive_timeout_ms = 600001\nbody_idle_timeout_ms = 1\n\
         max_connections_per_ip = 1000001\n",
        good()
    );
    let errs = errors_of(&bad);
    for field in [
        "limits.max_connections:",
        "limits.first_bytes_timeout_ms:",
        "limits.http2_idle_timeout_ms:",
        "limits.http2_keepalive_interval_ms:",
        "limits.http2_keepalive_timeout_ms:",
        "limits.body_idle_timeout_ms:",
        "limits.max_connections_per_ip:",
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(field)),
            "missing {field} in {errs:#?}"
        );
    }
}

#[test]
fn the_audit_stream_retention_has_a_default_and_a_range() {
    assert_eq!(
        build(&good()).unwrap().settings.audit_stream_max_len,
        crate::defaults::AUDIT_STREAM_MAX_LEN
    );
    let with = |n: u64| format!("{}\n[store]\naudit_stream_max_len = {n}\n", good());
    assert_eq!(
        build(&with(500)).unwrap().settings.audit_stream_max_len,
        500
    );
    let errs = errors_of(&with(0));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("store.audit_stream_max_len: must be between 1 and")),
        "{errs:#?}"
    );
}

#[test]
fn redis_connection_settings_are_checked_by_field_and_a_password_is_never_accepted() {
    let c = build(&good()).unwrap().settings.redis_connection;
    assert!(!c.cluster && c.ca_file.is_none() && c.client_cert.is_none());
    assert_eq!(c.connect_timeout, std::time::Duration::from_millis(500));
    assert_eq!(c.response_timeout, std::time::Duration::from_millis(500));

    let set = format!(
        "{}\n[store]\nredis_url = \"rediss://app@a:6379,rediss://b:6379\"\nredis_cluster = true\n\
         redis_ca_file = \"jwks.json\"\nredis_connect_timeout_ms = 2000\nredis_response_timeout_ms = 50\n",
        good()
    );
    let c = build(&set).unwrap().settings.redis_connection;
    assert!(c.cluster);
    assert!(c.ca_file.is_some_and(|f| f.ends_with("jwks.json")));
    assert_eq!(c.connect_timeout, std::time::Duration::from_millis(2000));
    assert_eq!(c.response_timeout, std::time::Duration::from_millis(50));

    let secret = "s3cr3t-value";
    let bad = format!(
        "{}\n[store]\nredis_url = \"redis://a:6379,redis://app:{secret}@b:6379/0\"\nredis_password = \"{secret}\"\n\
         redis_client_cert_file = \"jwks.json\"\nredis_ca_file = \"missing.pem\"\nredis_connect_timeout_ms = 0\n\
         redis_response_timeout_ms = 60001\n",
        good()
    );
    let errs = errors_of(&bad);
    for field in [
        "store.redis_url:",
        "store.redis_password:",
        "store.redis_client_key_file:",
        "store.redis_ca_file:",
        "store.redis_connect_timeout_ms:",
        "store.redis_response_timeout_ms:",
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(field)),
            "{field} not in {errs:?}"
        );
    }
    assert!(errs.iter().all(|e| !e.contains(secret)), "{errs:?}");
    assert!(
        errs.iter()
            .filter(|e| e.starts_with("store.redis_password") || e.starts_with("store.redis_url"))
            .all(|e| e.contains("IDGUARD_REDIS_PASSWORD")),
        "{errs:?}"
    );
}

#[test]
fn a_redis_url_carries_a_password_only_with_a_colon_in_its_userinfo() {
    for (url, has) in [
        ("redis://127.0.0.1:6379", false),
        ("rediss://app@host:6379/0", false),
        ("redis://app:pw@host:6379", true),
        ("redis://:pw@host", true),
        ("redis://host:6379/0?x=a:b@c", false),
        ("rediss://u:p%40x@host", true),
    ] {
        assert_eq!(url_has_password(url), has, "{url}");
    }
}
