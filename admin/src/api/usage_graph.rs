//! Who uses what: agents use the nodes and enterprise services their outbound authorizations name and the client
//! applications their inbound authorizations admit; nodes and enterprise services use the credentials they
//! inject or authenticate with. Read from what a request sees ([`Current`]: the routing file and the store) to
//! refuse deleting something in use, and from a built topology ([`Snapshot`]) to show "used by" in a diagram.
//!
//! A delete of something in use is refused (409 `in_use`, naming the users) unless it asks for the cascade with
//! `?cascade=true`: then the stored authorizations that name it are withdrawn in the same commit, each with its own
//! audit record. A credential's users are nodes, not authorizations, so a credential in use is refused even with
//! the cascade: its nodes must be repointed or deleted first.

use idguard_config::Snapshot;
use serde_json::{Value, json};

use super::authorizations::{Inbound, Outbound};
use super::core::{Current, Result};
use super::enterprise::Enterprise;
use super::nodes::{External, Llm};
use crate::error::AdminError;

/// At most this many users are named in a refusal; the rest are counted.
const NAMED_MAX: usize = 20;

/// The objects using one object: what they are (`"agents"`, `"nodes"`) and their ids, sorted, without repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct UsedBy {
    /// What the users are, plural.
    pub(super) what: &'static str,
    /// Their ids.
    pub(super) ids: Vec<String>,
}

// === impl UsedBy ===

impl UsedBy {
    fn new(what: &'static str, mut ids: Vec<String>) -> Self {
        ids.sort();
        ids.dedup();
        Self { what, ids }
    }

    /// As a diagram shows it: `[{"kind": "agent", "id": "a"}, ...]`.
    pub(super) fn to_json(&self) -> Value {
        let kind = self.what.trim_end_matches('s');
        Value::Array(
            self.ids
                .iter()
                .map(|id| json!({"kind": kind, "id": id}))
                .collect(),
        )
    }

    /// `agents a, b and 3 more`.
    pub(super) fn describe(&self) -> String {
        let named = self.ids.iter().take(NAMED_MAX).cloned().collect::<Vec<_>>();
        let rest = self.ids.len() - named.len();
        let mut out = format!("{} {}", self.what, named.join(", "));
        if rest > 0 {
            out.push_str(&format!(" and {rest} more"));
        }
        out
    }

    /// The 409 for deleting `kind`/`id` while these use it; `cascadable` says whether `?cascade=true` would help.
    pub(super) fn refusal(&self, kind: &'static str, id: &str, cascadable: bool) -> AdminError {
        AdminError::InUse {
            kind,
            id: id.into(),
            by: self.describe(),
            hint: if cascadable {
                "withdraw those authorizations first, or delete with ?cascade=true to withdraw them in the same change"
            } else {
                "point those nodes at another credential or delete them first"
            },
        }
    }
}

/// The `cascade` query parameter of a delete: `true` or `false` (default). Any other, repeated or unknown
/// parameter is refused (400) naming it.
pub(super) fn cascade_param(query: Option<&str>) -> Result<bool> {
    let bad = |field: &str, why: &str| AdminError::BadRequest(format!("{field}: {why}"));
    let mut cascade = None;
    for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match name.as_ref() {
            "cascade" if cascade.is_some() => return Err(bad("cascade", "given more than once")),
            "cascade" => {
                cascade = Some(match value.as_ref() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad("cascade", "must be true or false")),
                })
            }
            other => return Err(bad(other, "unknown query parameter")),
        }
    }
    Ok(cascade.unwrap_or(false))
}

// === from the file and the store ===

/// The agents whose outbound authorizations name the node or enterprise service `node`.
pub(super) fn agents_calling(cur: Current<'_>, node: &str) -> UsedBy {
    let file = cur.file.outbound.iter().filter(|e| e.node == node);
    let stored = cur.each::<Outbound>().map(|(_, e)| e);
    let ids = file
        .cloned()
        .chain(stored.filter(|e| e.node == node))
        .map(|e| e.agent)
        .collect();
    UsedBy::new("agents", ids)
}

/// The agents whose inbound authorizations admit the client application `client`.
pub(super) fn agents_admitting(cur: Current<'_>, client: &str) -> UsedBy {
    let file = cur.file.inbound.iter().filter(|e| e.client == client);
    let stored = cur.each::<Inbound>().map(|(_, e)| e);
    let ids = file
        .cloned()
        .chain(stored.filter(|e| e.client == client))
        .map(|e| e.agent)
        .collect();
    UsedBy::new("agents", ids)
}

/// The LLM, external and enterprise nodes that use the credential `credential`.
pub(super) fn nodes_using(cur: Current<'_>, credential: &str) -> UsedBy {
    let nodes = cur
        .file
        .llm
        .iter()
        .chain(&cur.file.external)
        .cloned()
        .chain(cur.each::<Llm>().map(|(_, n)| n))
        .chain(cur.each::<External>().map(|(_, n)| n))
        .filter(|n| n.credential == credential)
        .map(|n| n.id);
    let services = cur
        .file
        .enterprise
        .iter()
        .cloned()
        .chain(cur.each::<Enterprise>().map(|(_, s)| s))
        .filter(|s| {
            s.exchange
                .as_ref()
                .and_then(|x| x.credential.as_deref())
                .is_some_and(|c| c == credential)
        })
        .map(|s| s.id);
    UsedBy::new("nodes", nodes.chain(services).collect())
}

// === from a built topology ===

/// The agents that may call the node or enterprise service `node`.
pub(super) fn agents_calling_in(snapshot: &Snapshot, node: &str) -> UsedBy {
    let nodes = snapshot.edges.get(node).into_iter().flat_map(|e| e.keys());
    let services = snapshot
        .service_grants
        .get(node)
        .into_iter()
        .flat_map(|g| g.keys());
    let ids = nodes.chain(services).map(|a| a.to_string()).collect();
    UsedBy::new("agents", ids)
}

/// The nodes and enterprise services that use the credential `credential`.
pub(super) fn nodes_using_in(snapshot: &Snapshot, credential: &str) -> UsedBy {
    let nodes = snapshot
        .nodes
        .values()
        .filter(|n| &*n.credential == credential)
        .map(|n| n.id.to_string());
    let services = snapshot
        .services
        .values()
        .filter(|s| {
            s.exchange
                .as_ref()
                .and_then(|x| x.credential.as_deref())
                .is_some_and(|c| c == credential)
        })
        .map(|s| s.id.to_string());
    UsedBy::new("nodes", nodes.chain(services).collect())
}

/// The agents whose inbound authorizations admit the client application `client`.
pub(super) fn agents_admitting_in(snapshot: &Snapshot, client: &str) -> UsedBy {
    let ids = snapshot
        .inbound
        .iter()
        .filter(|(_, by_client)| by_client.contains_key(client))
        .map(|(agent, _)| agent.to_string())
        .collect();
    UsedBy::new("agents", ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cascade_parameter_is_checked_and_named() {
        assert!(!cascade_param(None).unwrap());
        assert!(cascade_param(Some("cascade=true")).unwrap());
        assert!(!cascade_param(Some("cascade=false")).unwrap());
        for (query, field) in [
            ("cascade=yes", "cascade"),
            ("cascade=true&cascade=true", "cascade"),
            ("force=true", "force"),
        ] {
            match cascade_param(Some(query)) {
                Err(AdminError::BadRequest(m)) => assert!(m.starts_with(field), "{query}: {m}"),
                other => panic!("{query}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_refusal_names_the_users_and_counts_the_rest() {
        let few = UsedBy::new("agents", vec!["b".into(), "a".into(), "a".into()]);
        assert_eq!(few.describe(), "agents a, b");
        let many = UsedBy::new("agents", (0..25).map(|i| format!("a{i:02}")).collect());
        assert!(many.describe().ends_with("a19 and 5 more"));
    }
}
