//! `GET /admin/v1/audit`: the audit log, newest first, from the store's shared copy — with Redis, the stream every
//! replica appends to in the commit itself, so any replica shows every replica's writes. Records were redacted
//! when written: no credential value, sealed or not, is ever in one. Owners read every record; viewers and editors
//! only their own (`actor` is their id; asking for another's is 403). The log has no route that changes it.

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use idguard_config::store::{AUDIT_PAGE_MAX, AuditCursor, AuditQuery, Kind};

use super::AdminApi;
use super::access::{Caller, Role};
use super::core::Result;
use crate::error::{AdminError, Internal};

/// Records per page when `limit` is absent.
const DEFAULT_LIMIT: usize = 100;

/// The audit route.
pub(super) fn routes() -> Router<AdminApi> {
    Router::new().route("/admin/v1/audit", get(list))
}

/// `GET /admin/v1/audit?limit=&cursor=&kind=&id=&action=&actor=&since=&until=`: `{"records": [...],
/// "next_cursor": "..."|null}`, newest first.
async fn list(
    State(api): State<AdminApi>,
    Extension(caller): Extension<Caller>,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    let query = narrow(parse(query.as_deref().unwrap_or(""))?, &caller)?;
    let store = api.inner.store.clone();
    let page = tokio::task::spawn_blocking(move || store.audit(&query))
        .await
        .map_err(|e| Internal::Task(e.to_string()))?
        .map_err(super::write::store_error)?;
    Ok(Json(page).into_response())
}

/// `query` as `caller` may run it: unchanged for an owner; limited to the caller's own records otherwise.
///
/// # Errors
/// 403 naming the owner role when a viewer or editor asks for another actor's records.
fn narrow(mut query: AuditQuery, caller: &Caller) -> Result<AuditQuery> {
    if caller.role >= Role::Owner {
        return Ok(query);
    }
    match &query.actor {
        Some(actor) if *actor != caller.actor => Err(AdminError::Forbidden {
            what: "reading another operator's audit records".into(),
            role: Role::Owner,
        }),
        _ => {
            query.actor = Some(caller.actor.clone());
            Ok(query)
        }
    }
}

/// The query string as an [`AuditQuery`]; a parameter that is unknown, repeated or malformed is refused naming it.
fn parse(query: &str) -> Result<AuditQuery> {
    let bad = |field: &str, why: &str| AdminError::BadRequest(format!("{field}: {why}"));
    let number = |field: &str, v: &str| {
        v.parse::<u64>()
            .map_err(|_| bad(field, "must be a non-negative integer"))
    };
    let mut q = AuditQuery {
        limit: DEFAULT_LIMIT,
        ..AuditQuery::default()
    };
    let mut seen = std::collections::HashSet::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        let field = name.as_ref();
        if !seen.insert(field.to_owned()) {
            return Err(bad(field, "given more than once"));
        }
        let value = value.into_owned();
        match field {
            "limit" => {
                q.limit = match number(field, &value)? {
                    n @ 1.. if n <= AUDIT_PAGE_MAX as u64 => n as usize,
                    _ => {
                        return Err(bad(
                            field,
                            &format!("must be between 1 and {AUDIT_PAGE_MAX}"),
                        ));
                    }
                }
            }
            "cursor" => {
                q.cursor = Some(
                    value
                        .parse::<AuditCursor>()
                        .map_err(|()| bad(field, "not a cursor this API returned"))?,
                );
            }
            "kind" => {
                q.kind = Some(
                    serde_json::from_value::<Kind>(serde_json::Value::String(value))
                        .map_err(|_| bad(field, "not an object kind"))?,
                );
            }
            "id" => q.id = Some(value),
            "action" => match value.as_str() {
                "create" | "update" | "delete" | "reseal" => q.action = Some(value),
                _ => return Err(bad(field, "must be create, update, delete or reseal")),
            },
            "actor" => q.actor = Some(value),
            "since" => q.since = Some(number(field, &value)?),
            "until" => q.until = Some(number(field, &value)?),
            _ => return Err(bad(field, "unknown query parameter")),
        }
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_owners_read_other_actors_records() {
        let caller = |role| Caller {
            actor: "alice".into(),
            auth: idguard_config::store::AuthMethod::OperatorToken,
            role,
            request_id: "r".into(),
        };
        let all = AuditQuery::default();
        let bob = AuditQuery {
            actor: Some("bob".into()),
            ..AuditQuery::default()
        };
        assert_eq!(
            narrow(all.clone(), &caller(Role::Owner)).unwrap().actor,
            None
        );
        assert_eq!(
            narrow(bob.clone(), &caller(Role::Owner))
                .unwrap()
                .actor
                .as_deref(),
            Some("bob")
        );
        for role in [Role::Viewer, Role::Editor] {
            assert_eq!(
                narrow(all.clone(), &caller(role)).unwrap().actor.as_deref(),
                Some("alice")
            );
            assert!(matches!(
                narrow(bob.clone(), &caller(role)),
                Err(AdminError::Forbidden {
                    role: Role::Owner,
                    ..
                })
            ));
        }
    }

    #[test]
    fn parameters_are_checked_and_named() {
        let q =
            parse("limit=5&cursor=17-2&kind=agent&id=a&action=update&actor=admin&since=1&until=2")
                .unwrap();
        assert_eq!(q.limit, 5);
        assert_eq!(
            q.cursor,
            Some(AuditCursor {
                major: 17,
                minor: 2
            })
        );
        assert_eq!(q.kind, Some(Kind::Agent));
        assert_eq!((q.since, q.until), (Some(1), Some(2)));
        assert_eq!(parse("").unwrap().limit, DEFAULT_LIMIT);
        for (query, field) in [
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=x", "limit"),
            ("cursor=abc", "cursor"),
            ("kind=planet", "kind"),
            ("action=drop", "action"),
            ("since=-1", "since"),
            ("id=a&id=b", "id"),
            ("colour=red", "colour"),
        ] {
            match parse(query) {
                Err(AdminError::BadRequest(m)) => assert!(m.starts_with(field), "{query}: {m}"),
                other => panic!("{query}: {other:?}"),
            }
        }
    }
}
