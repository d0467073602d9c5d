//! Micro-benchmarks of the data plane's hot path, each on the real code: token verification (first sight and
//! repeat sight, ES256 / RS256 / EdDSA), route + authorization lookup in a topology of 10 000 agents and 50 000
//! edges, caller-credential stripping + injection on a realistic SDK header set, path checking, seal/unseal, and the
//! echoed-credential scan of a streamed response body.
//!
//! Run: `cargo bench --bench hot_path` (figures and their reading are in docs/performance.md).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, unreachable_pub)]

#[path = "../tests/integration/common/keys.rs"]
mod keys;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use idguard_config::MasterKeys;
use idguard_config::raw::{RawAgent, RawConfig, RawCredential, RawEdge, RawNode};
use idguard_config::snapshot::{InjectStyle, Issuer, KeySource};
use idguard_config::validate::{BuildContext, validate};
use idguard_proxy::echo::{Needles, Redactor};
use idguard_proxy::keys::{FetchFuture, JwksFetch, KeyStore};
use idguard_proxy::middleware::authorize::decide;
use idguard_proxy::middleware::strip::{strip_headers, strip_query};
use idguard_proxy::routes::{RouteClass, Routes, prepare};
use idguard_proxy::verify::{Attempt, Identity, Verifier};
use keys::{AUDIENCE, ISSUER, SigningKey, claims};

struct NoFetch;
impl JwksFetch for NoFetch {
    fn fetch(&self, _url: &str) -> FetchFuture {
        Box::pin(async { Err("benchmarks fetch nothing".to_owned()) })
    }
}

fn key_store(keys: &[&SigningKey]) -> Arc<KeyStore> {
    let dir = std::env::temp_dir().join(format!("idguard-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jwks.json");
    std::fs::write(&path, keys::jwks(keys)).unwrap();
    let store = Arc::new(KeyStore::new(Arc::new(NoFetch)));
    store.set_issuers(&[Arc::new(Issuer {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        keys: KeySource::File(path),
        accepted_typ: vec![idguard_config::defaults::ACCESS_TOKEN_TYP.into()],
        leeway_seconds: 30,
        jwks_refresh: Duration::from_secs(300),
    })]);
    store
}

fn verification(c: &mut Criterion) {
    let signing = [
        SigningKey::es256("es"),
        SigningKey::rs256("rs"),
        SigningKey::eddsa("ed"),
    ];
    let store = key_store(&signing.iter().collect::<Vec<_>>());
    for key in &signing {
        let tokens: Vec<String> = (0..512)
            .map(|_| key.token(&claims("agent-1", "llm.use")))
            .collect();
        // No cache: every verification is a first sight.
        let cold = Verifier::new(store.clone(), 0, idguard_config::Clock::system());
        let mut i = 0;
        c.bench_function(&format!("verify/first_sight/{}", key.alg_name()), |b| {
            b.iter(|| {
                i = (i + 1) % tokens.len();
                assert!(matches!(
                    cold.attempt(black_box(&tokens[i])),
                    Attempt::Verified(_)
                ));
            })
        });
        let warm = Verifier::new(store.clone(), 100_000, idguard_config::Clock::system());
        assert!(matches!(warm.attempt(&tokens[0]), Attempt::Verified(_)));
        c.bench_function(&format!("verify/repeat_sight/{}", key.alg_name()), |b| {
            b.iter(|| {
                assert!(matches!(
                    warm.attempt(black_box(&tokens[0])),
                    Attempt::Verified(_)
                ))
            })
        });
    }
}

/// 10 000 agents, 100 LLM nodes, 5 edges per agent (50 000 edges), two required scopes on each.
fn big_routes() -> Routes {
    let agents: Vec<RawAgent> = (0..10_000)
        .map(|i| RawAgent {
            id: format!("agent-{i}"),
            name: None,
            audience: None,
            permission: None,
            auth: None,
            secrets: vec![],
            keys: vec![],
            enabled: None,
            endpoint: None,
            token_ttl_seconds: None,
        })
        .collect();
    let llm: Vec<RawNode> = (0..100)
        .map(|i| RawNode {
            id: format!("node-{i}"),
            name: None,
            upstream: format!("https://llm-{i}.example.com/v1"),
            style: "bearer".into(),
            header: None,
            prefix: None,
            query: None,
            credential: "c".into(),
            forward_identity: None,
            methods: None,
            oauth: None,
        })
        .collect();
    let outbound: Vec<RawEdge> = (0..50_000)
        .map(|i| RawEdge {
            agent: format!("agent-{}", i / 5),
            node: format!("node-{}", (i * 7 + i / 5) % 100),
            scopes: vec!["llm.use".into(), "llm.chat".into()],
        })
        .collect();
    let raw = RawConfig {
        agents,
        llm,
        outbound,
        credentials: vec![RawCredential {
            id: "c".into(),
            name: None,
            api_key_id: None,
            description: None,
            kind: "llm".into(),
            hosts: None,
            sealed: None,
            env: Some("BENCH_KEY".into()),
            fingerprint: None,
            previous: None,
        }],
        ..Default::default()
    };
    let env = |_: &str| Some("sk-bench".to_owned());
    let ctx = BuildContext {
        base_dir: ".".into(),
        master_keys: None,
        env: &env,
        generation: 1,
        public_addr: None,
    };
    Routes::build(Arc::new(validate(raw, &ctx).unwrap()))
}

fn route_and_authorize(c: &mut Criterion) {
    let routes = big_routes();
    let edges: Vec<(String, Identity)> = (0..50_000)
        .step_by(97)
        .map(|i| {
            let identity = Identity {
                agent: format!("agent-{}", i / 5).into(),
                user: None,
                audience: AUDIENCE.into(),
                for_proxy: true,
                local: false,
                jti_digest: None,
                credential: None,
                token_digest: [0; 32],
                scopes: vec!["openid".into(), "llm.chat".into(), "llm.use".into()].into(),
                exp: u64::MAX,
            };
            (format!("node-{}", (i * 7 + i / 5) % 100), identity)
        })
        .collect();
    let mut i = 0;
    c.bench_function("route_authorize/10k_agents_50k_edges", |b| {
        b.iter(|| {
            i = (i + 1) % edges.len();
            let (node, identity) = &edges[i];
            let node = routes.route(RouteClass::Llm, black_box(node)).unwrap();
            decide(node, black_box(identity), &routes.snapshot).unwrap();
        })
    });
}

fn strip_and_inject(c: &mut Criterion) {
    // What the OpenAI Python SDK sends, plus a cookie and a stray key.
    let mut headers = HeaderMap::new();
    for (k, v) in [
        ("host", "proxy.internal:8080"),
        (
            "authorization",
            "Bearer eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl",
        ),
        ("content-type", "application/json"),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, deflate"),
        ("connection", "keep-alive"),
        ("content-length", "412"),
        ("user-agent", "OpenAI/Python 1.54.0"),
        ("x-stainless-lang", "python"),
        ("x-stainless-package-version", "1.54.0"),
        ("x-stainless-os", "Linux"),
        ("x-stainless-arch", "x64"),
        ("x-stainless-runtime", "CPython"),
        ("x-stainless-runtime-version", "3.11.7"),
        ("x-stainless-async", "false"),
        ("x-stainless-retry-count", "0"),
        ("x-stainless-read-timeout", "600"),
        ("cookie", "session=abc"),
        ("x-api-key", "sk-caller"),
    ] {
        headers.insert(k, HeaderValue::from_static(v));
    }
    let injection = prepare(
        &InjectStyle::Bearer,
        "sk-proj-0123456789abcdefghijklmnopqrstuvwxyz",
    )
    .unwrap();
    c.bench_function("strip_inject/openai_sdk_headers", |b| {
        b.iter_batched(
            || {
                (
                    headers.clone(),
                    Some("api-version=2024-02-01&key=x".to_owned()),
                )
            },
            |(mut h, query)| {
                strip_headers(&mut h);
                let mut query = query.and_then(|q| strip_query(&q, None));
                injection.apply(&mut h, &mut query);
                black_box((h, query))
            },
            BatchSize::SmallInput,
        )
    });
}

fn path_check(c: &mut Criterion) {
    let paths = [
        "/llm/openai/v1/chat/completions",
        "/llm/gemini/v1beta/models/gemini-1.5-pro:generateContent",
        "/ext/weather/v2/forecast/caf%C3%A9",
    ];
    let mut i = 0;
    c.bench_function("path/check", |b| {
        b.iter(|| {
            i = (i + 1) % paths.len();
            idguard_proxy::path::check_allowing_trailing_slash(black_box(paths[i])).unwrap();
        })
    });
}

fn sealing(c: &mut Criterion) {
    let keys = MasterKeys::parse(&MasterKeys::generate_encoded()).unwrap();
    let value = "sk-proj-0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdef";
    let sealed = keys.seal("cred-openai", value.as_bytes()).unwrap();
    c.bench_function("seal/seal", |b| {
        b.iter(|| {
            keys.seal("cred-openai", black_box(value.as_bytes()))
                .unwrap()
        })
    });
    c.bench_function("seal/open", |b| {
        b.iter(|| keys.open("cred-openai", black_box(&sealed)).unwrap())
    });
}

/// 1 MiB of SSE chat-completion text in 16 KiB chunks through the echo scan of an OpenAI-style key: without a
/// match, and with one echo split across two chunks; `passthrough` is the same loop without the scan, so the
/// difference is the scan's cost.
fn echo_scan(c: &mut Criterion) {
    const MIB: usize = 1 << 20;
    let key = "sk-proj-0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdef";
    let needles = Arc::new(Needles::new(key.as_bytes(), None).unwrap());
    let mut text = Vec::with_capacity(MIB + 256);
    let mut i = 0u64;
    while text.len() < MIB {
        // Words that start like the key's forms (`sk`, `c2`, `73`) keep the candidate filter honest.
        text.extend_from_slice(
            format!(
                "data: {{\"id\":\"chatcmpl-{i}\",\"choices\":[{{\"delta\":{{\"content\":\"token {} sk skip c2 73\"}}}}]}}\n\n",
                i * 7919 % 104_729
            )
            .as_bytes(),
        );
        i += 1;
    }
    text.truncate(MIB);
    let chunk = 16 << 10;
    let chunks = |t: &[u8]| -> Vec<Bytes> { t.chunks(chunk).map(Bytes::copy_from_slice).collect() };
    let clean = chunks(&text);
    let mut echoed = text.clone();
    let at = 32 * chunk - key.len() / 2;
    echoed[at..at + key.len()].copy_from_slice(key.as_bytes());
    let echoed = chunks(&echoed);
    let mut group = c.benchmark_group("echo_scan/1MiB_16KiB_chunks");
    group.throughput(Throughput::Bytes(MIB as u64));
    group.bench_function("passthrough", |b| {
        b.iter(|| {
            let n: usize = clean.iter().map(|c| black_box(c.clone()).len()).sum();
            assert_eq!(n, MIB);
        })
    });
    for (name, input, matches) in [("no_match", &clean, 0), ("one_match", &echoed, 1)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut r = Redactor::new(needles.clone());
                let mut n = 0;
                for c in input {
                    n += black_box(r.push(c.clone())).len();
                }
                n += r.finish().len();
                assert_eq!((n, r.redacted()), (MIB, matches));
            })
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! { name = benches; config = config(); targets = verification, route_and_authorize, strip_and_inject, path_check, sealing, echo_scan }
criterion_main!(benches);
