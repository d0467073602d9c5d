//! Where credentials and codes may be sent: credentials bound to hosts (J04), the headers a node may inject
//! into, http redirect URIs only to loopback, and which objects came from the admin API's store.

use super::*;
use crate::snapshot::Origin;
use crate::store::{Kind, StoredObject};

#[test]
fn j04_a_credential_is_sent_only_to_the_hosts_it_is_bound_to() {
    let bound = |hosts: &str| {
        good().replacen(
            "kind = \"llm\"",
            &format!("kind = \"llm\"\nhosts = {hosts}"),
            1,
        )
    };
    for ok in [
        r#"["api.openai.com"]"#,
        r#"["API.OpenAI.com."]"#,
        r#"["*.openai.com"]"#,
        r#"["other.example", "api.openai.com"]"#,
    ] {
        let s = build(&bound(ok)).unwrap_or_else(|e| panic!("{ok}: {e:#?}"));
        assert!(s.credentials["c1"].hosts.is_some());
    }
    for (hosts, want) in [
        (
            r#"["api.anthropic.com"]"#,
            "llm[0].credential: credential \"c1\" may only be sent to api.anthropic.com (its hosts); this sends it to api.openai.com",
        ),
        (
            r#"["*.api.openai.com"]"#,
            "llm[0].credential: credential \"c1\" may only be sent to",
        ),
        (r#"[]"#, "credentials[0].hosts: must list at least one host"),
        (
            r#"["https://api.openai.com"]"#,
            "credentials[0].hosts[0]: \"https://api.openai.com\" is not a host",
        ),
        (r#"["api.openai.com:443"]"#, "credentials[0].hosts[0]:"),
    ] {
        let errs = errors_of(&bound(hosts));
        assert!(
            errs.iter().any(|e| e.starts_with(want)),
            "{hosts}: {want:?} not in {errs:#?}"
        );
    }
    // Without hosts a file credential stays usable by the file's nodes, as before.
    assert!(build(&good()).unwrap().credentials["c1"].hosts.is_none());
}

#[test]
fn j04_a_client_secret_is_bound_to_the_token_endpoint_it_is_sent_to() {
    let text = |hosts: &str| {
        format!(
            r#"{}
[[credentials]]
id = "client-secret"
kind = "external"
env = "SET_VAR"
hosts = {hosts}

[[external]]
id = "crm"
upstream = "https://api.crm.example"
style = "bearer"
credential = "client-secret"
oauth = {{ token_url = "https://login.crm.example/token", client_id = "idg" }}

[[enterprise]]
id = "svc"
audience = "urn:svc"
exchange = {{ token_url = "https://as.corp.example/token", client_id = "idg", credential = "client-secret" }}
"#,
            good()
        )
    };
    build(&text(r#"["login.crm.example", "as.corp.example"]"#)).unwrap();
    let errs = errors_of(&text(r#"["api.crm.example"]"#));
    for want in [
        "external[1].credential: credential \"client-secret\" may only be sent to api.crm.example (its hosts); this sends it to login.crm.example",
        "enterprise[0].exchange.credential: credential \"client-secret\" may only be sent to api.crm.example (its hosts); this sends it to as.corp.example",
    ] {
        assert!(errs.iter().any(|e| e == want), "{want:?} not in {errs:#?}");
    }
}

#[test]
fn a_credential_cannot_be_injected_into_a_hop_by_hop_framing_or_routing_header() {
    let with_header = |name: &str| {
        good().replacen(
            "style = \"bearer\"",
            &format!("style = \"header\"\nheader = {name:?}"),
            1,
        )
    };
    for name in [
        "host",
        "Transfer-Encoding",
        "connection",
        "content-length",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "x-idguard-agent",
        ":authority",
        "bad name",
    ] {
        let errs = errors_of(&with_header(name));
        assert!(
            errs.iter().any(|e| e.starts_with("llm[0].header:")),
            "{name}: {errs:#?}"
        );
    }
    for name in ["x-api-key", "Authorization", "api-key"] {
        build(&with_header(name)).unwrap_or_else(|e| panic!("{name}: {e:#?}"));
    }
}

#[test]
fn http_redirect_uris_are_only_for_loopback_hosts() {
    let client = |uri: &str| {
        format!(
            "{}\n[[clients]]\nid = \"web\"\nredirect_uris = [{uri:?}]\n",
            good()
        )
    };
    for ok in [
        "https://app.example.com/cb",
        "http://localhost:3000/cb",
        "http://127.0.0.1/cb",
        "http://127.1.2.3:8080/cb",
        "http://[::1]:8080/cb",
    ] {
        build(&client(ok)).unwrap_or_else(|e| panic!("{ok}: {e:#?}"));
    }
    for bad in [
        "http://app.example.com/cb",
        "http://10.0.0.1/cb",
        "http://localhost.evil.example/cb",
        "ftp://app.example.com/cb",
    ] {
        let errs = errors_of(&client(bad));
        assert!(
            errs.iter()
                .any(|e| e.starts_with("clients[0].redirect_uris[0]:")),
            "{bad}: {errs:#?}"
        );
    }
}

#[test]
fn objects_merged_from_the_store_are_api_managed() {
    let mut raw: RawConfig = toml::from_str(&good()).unwrap();
    let object = |kind, id: &str, body: serde_json::Value| StoredObject {
        kind,
        id: id.into(),
        version: 1,
        created_at: 0,
        updated_at: 0,
        body,
    };
    crate::store::merge(
        &mut raw,
        &[
            object(
                Kind::Llm,
                "api-llm",
                serde_json::json!({"id": "api-llm", "upstream": "https://llm.example", "style": "bearer", "credential": "c1"}),
            ),
            object(Kind::Agent, "api-agent", serde_json::json!({"id": "api-agent"})),
            object(Kind::Enterprise, "svc", serde_json::json!({"id": "svc", "audience": "urn:svc"})),
        ],
    )
    .unwrap();
    let s = build_raw(raw).unwrap();
    assert_eq!(s.nodes["api-llm"].origin, Origin::Api);
    assert_eq!(s.nodes["openai"].origin, Origin::File);
    assert_eq!(s.agents["api-agent"].origin, Origin::Api);
    assert_eq!(s.agents["a1"].origin, Origin::File);
    assert_eq!(s.services["svc"].origin, Origin::Api);
    // An export writes the store's objects into a routing file: from there they are the file's.
    let exported = toml::to_string(&{
        let mut raw: RawConfig = toml::from_str(&good()).unwrap();
        raw.api_managed.insert((Kind::Llm, "openai".into()));
        raw
    })
    .unwrap();
    let reread: RawConfig = toml::from_str(&exported).unwrap();
    assert!(reread.api_managed.is_empty());
}
