use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use idguard_config::store::IdempotentAnswer;
use serde_json::json;

use super::*;
use crate::store::EmbeddedStore;

const K1: &str = "1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
const K2: &str = "2:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("idguard-reseal-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn create(store: &dyn Store, id: &str, body: Value) {
    let write = Write {
        kind: Kind::Credential,
        id: id.into(),
        expect: Expect::Absent,
        body: Some(body),
    };
    store.commit(&[write], &[], None).unwrap();
}

fn sealed_of(store: &dyn Store, id: &str) -> (String, u64) {
    let (_, objects) = store.load().unwrap();
    let o = objects.into_iter().find(|o| o.id == id).unwrap();
    (o.body["sealed"].as_str().unwrap().to_owned(), o.version)
}

#[test]
fn every_credential_moves_to_the_newest_term_once_and_audited() {
    let dir = dir("moves");
    let store = EmbeddedStore::open(&dir).unwrap();
    let old = MasterKeys::parse(K1).unwrap();
    let both = MasterKeys::parse(&format!("{K1}\n{K2}")).unwrap();
    let cred = |id: &str, sealed: String| json!({"id": id, "kind": "llm", "sealed": sealed, "fingerprint": "f"});
    create(&store, "a", cred("a", old.seal("a", b"value-a").unwrap()));
    create(&store, "b", cred("b", both.seal("b", b"value-b").unwrap()));
    // Sealed for another id: it does not open, and is reported rather than touched.
    create(&store, "c", cred("c", old.seal("x", b"value-c").unwrap()));
    create(&store, "e", json!({"id": "e", "kind": "llm", "env": "E"}));

    let report = reseal(&store, &both, "reseal").unwrap();
    assert_eq!(report.term, 2);
    assert_eq!(report.rewrapped, ["a"]);
    assert_eq!(report.left, ["b", "e"]);
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, "c");
    assert!(report.failed[0].1.contains("does not open"), "{report:?}");
    let (sealed, version) = sealed_of(&store, "a");
    assert_eq!((inspect(&sealed).unwrap(), version), (2, 2));
    assert_eq!(both.open("a", &sealed).unwrap().expose(), "value-a");
    assert_eq!(sealed_of(&store, "c").1, 1, "a failure changes nothing");
    // One audit record, for the one change, with no sealed value in it.
    let audit = std::fs::read_to_string(dir.join("audit.log")).unwrap();
    assert_eq!(audit.lines().count(), 1, "{audit}");
    let record: Value = serde_json::from_str(audit.trim()).unwrap();
    assert_eq!(
        (&record["actor"], &record["action"], &record["id"]),
        (&json!("reseal"), &json!("reseal"), &json!("a"))
    );
    assert_eq!(record["before"]["sealed"], "[redacted]");
    assert_eq!(record["after"]["sealed"], "[redacted]");
    assert!(!audit.contains("idg1."));

    // Idempotent: a second run re-wraps nothing.
    let again = reseal(&store, &both, "reseal").unwrap();
    assert!(again.rewrapped.is_empty());
    assert_eq!(again.left, ["a", "b", "e"]);
    assert_eq!(sealed_of(&store, "a").1, 2);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_value_kept_for_rollback_moves_to_the_newest_term_with_the_one_in_force() {
    let dir = dir("previous");
    let store = EmbeddedStore::open(&dir).unwrap();
    let old = MasterKeys::parse(K1).unwrap();
    let both = MasterKeys::parse(&format!("{K1}\n{K2}")).unwrap();
    // The value in force is on the newest term already; only the kept one is stale.
    let body = json!({"id": "p", "kind": "llm", "sealed": both.seal("p", b"new").unwrap(),
                      "previous": {"sealed": old.seal("p", b"old").unwrap(), "until": 4_102_444_800u64}});
    create(&store, "p", body);
    let report = reseal(&store, &both, "reseal").unwrap();
    assert_eq!(report.rewrapped, ["p"]);
    let (_, objects) = store.load().unwrap();
    let kept = objects[0].body["previous"]["sealed"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(inspect(&kept).unwrap(), 2);
    assert_eq!(both.open("p", &kept).unwrap().expose(), "old");
    let audit = std::fs::read_to_string(dir.join("audit.log")).unwrap();
    assert!(!audit.contains("idg1."), "{audit}");
    assert_eq!(reseal(&store, &both, "reseal").unwrap().left, ["p"]);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A store where another writer changes the credential between the run's read and its commit, once.
struct Racing {
    inner: EmbeddedStore,
    raced: AtomicBool,
}

impl Store for Racing {
    fn version(&self) -> Result<u64, StoreError> {
        self.inner.version()
    }

    fn load(&self) -> Result<(u64, Vec<StoredObject>), StoreError> {
        self.inner.load()
    }

    fn audit(
        &self,
        query: &idguard_config::store::AuditQuery,
    ) -> Result<idguard_config::store::AuditPage, StoreError> {
        self.inner.audit(query)
    }

    fn secrets_last_used(&self, use_keys: &[[u8; 32]]) -> Result<Vec<Option<u64>>, StoreError> {
        self.inner.secrets_last_used(use_keys)
    }

    fn commit(
        &self,
        writes: &[Write],
        audit: &[AuditRecord],
        idempotency: Option<(&str, &IdempotentAnswer)>,
    ) -> Result<u64, StoreError> {
        if !self.raced.swap(true, Ordering::SeqCst) {
            let (_, objects) = self.inner.load()?;
            let mut o = objects.into_iter().find(|o| o.id == writes[0].id).unwrap();
            o.body["name"] = json!("renamed meanwhile");
            let concurrent = Write {
                kind: o.kind,
                id: o.id.clone(),
                expect: Expect::Version(o.version),
                body: Some(o.body),
            };
            self.inner.commit(&[concurrent], &[], None)?;
        }
        self.inner.commit(writes, audit, idempotency)
    }

    fn idempotent(&self, key: &str) -> Result<Option<IdempotentAnswer>, StoreError> {
        self.inner.idempotent(key)
    }
}

#[test]
fn a_concurrent_change_is_kept_and_the_credential_still_rewrapped() {
    let dir = dir("race");
    let store = Racing {
        inner: EmbeddedStore::open(&dir).unwrap(),
        raced: AtomicBool::new(false),
    };
    let old = MasterKeys::parse(K1).unwrap();
    let both = MasterKeys::parse(&format!("{K1}\n{K2}")).unwrap();
    let sealed = old.seal("a", b"value-a").unwrap();
    store
        .inner
        .commit(
            &[Write {
                kind: Kind::Credential,
                id: "a".into(),
                expect: Expect::Absent,
                body: Some(json!({"id": "a", "kind": "llm", "sealed": sealed})),
            }],
            &[],
            None,
        )
        .unwrap();
    let report = reseal(&store, &both, "reseal").unwrap();
    assert_eq!(report.rewrapped, ["a"]);
    let (_, objects) = store.load().unwrap();
    assert_eq!(
        objects[0].version, 3,
        "the concurrent write, then the re-wrap"
    );
    assert_eq!(
        objects[0].body["name"], "renamed meanwhile",
        "not overwritten"
    );
    let sealed = objects[0].body["sealed"].as_str().unwrap();
    assert_eq!(inspect(sealed).unwrap(), 2);
    assert_eq!(both.open("a", sealed).unwrap().expose(), "value-a");
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
