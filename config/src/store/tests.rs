//! The stored-record format: old records read, newer ones are refused, and a replica that meets one keeps its
//! topology and reports not ready.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use prometheus::Registry;
use serde_json::json;

use super::*;
use crate::readiness::{NotReady, Readiness};
use crate::reload::{Loader, Reloader};

fn agent_record(format: Option<u32>) -> String {
    let mut v = json!({
        "kind": "agent", "id": "a1", "version": 3, "created_at": 1, "updated_at": 2,
        "body": {"id": "a1"}
    });
    if let Some(f) = format {
        v["format"] = json!(f);
    }
    v.to_string()
}

#[test]
fn a_record_without_a_format_reads_as_format_1_and_is_written_with_it() {
    let o: StoredObject = serde_json::from_str(&agent_record(None)).unwrap();
    assert_eq!((o.kind, o.id.as_str(), o.version), (Kind::Agent, "a1", 3));
    let written: serde_json::Value = serde_json::to_value(&o).unwrap();
    assert_eq!(written["format"], json!(STORED_FORMAT));
    let again: StoredObject = serde_json::from_value(written).unwrap();
    assert_eq!(again, o);
}

#[test]
fn a_record_in_a_newer_format_is_refused_with_a_clear_message() {
    let e = serde_json::from_str::<StoredObject>(&agent_record(Some(STORED_FORMAT + 1)))
        .expect_err("a newer format must not decode");
    let StoreError::Corrupt(why) = StoreError::corrupt("agent/a1", &e) else {
        panic!("not a corrupt-record error")
    };
    assert!(
        why.starts_with("agent/a1: record in stored format 2, newer than this idguard reads (up to 1); upgrade this replica"),
        "{why}"
    );
}

/// A store holding whatever records a test puts in it, as their JSON text.
struct Records(Mutex<Vec<String>>);

impl Store for Records {
    fn version(&self) -> Result<u64, StoreError> {
        Ok(self.0.lock().unwrap().len() as u64)
    }
    fn load(&self) -> Result<(u64, Vec<StoredObject>), StoreError> {
        let records = self.0.lock().unwrap();
        let objects = records
            .iter()
            .map(|t| serde_json::from_str(t).map_err(|e| StoreError::corrupt("agent/a1", &e)))
            .collect::<Result<_, _>>()?;
        Ok((records.len() as u64, objects))
    }
    fn commit(
        &self,
        _: &[Write],
        _: &[AuditRecord],
        _: Option<(&str, &IdempotentAnswer)>,
    ) -> Result<u64, StoreError> {
        unreachable!("the reloader never writes")
    }
    fn idempotent(&self, _: &str) -> Result<Option<IdempotentAnswer>, StoreError> {
        Ok(None)
    }
    fn audit(&self, _: &AuditQuery) -> Result<AuditPage, StoreError> {
        unreachable!("the reloader never reads the audit log")
    }
    fn secrets_last_used(&self, _: &[[u8; 32]]) -> Result<Vec<Option<u64>>, StoreError> {
        unreachable!("the reloader never reads secrets' last use")
    }
}

#[test]
fn a_replica_meeting_a_newer_record_keeps_its_topology_and_is_not_ready_until_it_can_read_the_store()
 {
    let dir = std::env::temp_dir().join(format!("idguard-format-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("routing.toml");
    std::fs::write(&file, "allow_empty = true\n").unwrap();
    let records = Arc::new(Records(Mutex::new(vec![agent_record(None)])));
    let loader = Loader::new(&file, None).with_store(records.clone());
    let readiness = Arc::new(Readiness::default());
    let (mut reloader, rx) = Reloader::start(loader, readiness.clone(), &Registry::new()).unwrap();
    assert_eq!(readiness.check(), Ok(()));
    assert!(rx.borrow().agents.contains_key("a1"));

    // A newer replica rewrites the record in a format this build does not know.
    records.0.lock().unwrap()[0] = agent_record(Some(STORED_FORMAT + 1));
    let err = reloader
        .reload_now()
        .expect_err("the newer record must be refused");
    assert!(
        matches!(err, crate::ConfigError::StoreRecord(ref why) if why.contains("stored format 2")),
        "{err}"
    );
    assert_eq!(readiness.check(), Err(NotReady::StoreUnreadable));
    assert!(
        rx.borrow().agents.contains_key("a1"),
        "the running topology stays"
    );

    // Back to a format it reads (the newer replicas were rolled back): ready again.
    records.0.lock().unwrap()[0] = agent_record(Some(1));
    reloader.reload_now().unwrap();
    assert_eq!(readiness.check(), Ok(()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn errors_in_stored_objects_name_the_object_not_its_merged_index() {
    // The file declares one agent and one LLM node; the store adds an agent `b`, a node `gpt` and a node `x`.
    let mut raw: crate::raw::RawConfig = toml::from_str(
        "[[agents]]\nid = \"a\"\n\n[[llm]]\nid = \"file-node\"\nupstream = \"https://f.example.com\"\nstyle = \"bearer\"\ncredential = \"c\"\n",
    )
    .unwrap();
    let counts = FileCounts::of(&raw);
    let stored = |kind, id: &str| StoredObject {
        kind,
        id: id.into(),
        version: 1,
        created_at: 0,
        updated_at: 0,
        body: json!({"id": id, "upstream": "https://u.example.com", "style": "bearer", "credential": "c"}),
    };
    let objects = vec![
        stored(Kind::Llm, "gpt"),
        StoredObject {
            body: json!({"id": "b"}),
            ..stored(Kind::Agent, "b")
        },
        stored(Kind::Llm, "x"),
    ];
    merge(&mut raw, &objects).unwrap();
    let error = |path: &str, line| ValidationError {
        path: path.into(),
        line,
        message: "m".into(),
    };
    let mut errors = vec![
        error("llm[0].style", Some(7)),
        error("llm[1].style", Some(99)),
        error("llm[2]", None),
        error("agents[1].name", None),
        error("llm[9].style", None),
        error("listeners.public", Some(2)),
    ];
    name_stored(&mut errors, &counts, &objects);
    let paths: Vec<(&str, Option<usize>)> =
        errors.iter().map(|e| (e.path.as_str(), e.line)).collect();
    assert_eq!(
        paths,
        [
            ("llm[0].style", Some(7)),
            ("llm[id=gpt].style", None),
            ("llm[id=x]", None),
            ("agents[id=b].name", None),
            ("llm[9].style", None),
            ("listeners.public", Some(2)),
        ]
    );
}
