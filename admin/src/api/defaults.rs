//! The defaults the admin API fills in where a request or a stored object leaves a field out. Validation applies
//! the same ones to the routing file; each is one function here so that both can come from one place.

/// The audience of an agent that was given none.
pub(super) fn agent_audience(agent_id: &str) -> String {
    format!("urn:idguard:agent:{agent_id}")
}

/// The scope of an agent permission that names none.
pub(super) fn permission_scope() -> String {
    "agent.access".into()
}

/// How an agent or a client application authenticates when `auth` is not set.
pub(super) fn client_auth() -> String {
    "client_secret".into()
}

/// The display name of an object that has none: its id.
pub(super) fn name(id: &str) -> String {
    id.to_owned()
}

/// Whether an agent or a client application without `enabled` is enabled.
pub(super) fn enabled() -> bool {
    true
}
