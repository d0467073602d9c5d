//! Paging, search and a stable order for every collection the admin API lists: `?limit=&cursor=&q=`, answered
//! `{"items": [...], "next_cursor": "..."|null}`.
//!
//! Items are sorted by id (byte order), so a page boundary is just "the last id shown". A cursor carries that id
//! and a keyed tag over the collection and the id, so a cursor is opaque and cannot be forged or moved to another
//! collection (400). Because a cursor names an id, not a position, objects created or deleted between two requests
//! never make a page repeat or skip one of the objects that existed throughout.

use axum::Json;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::AdminApi;
use super::core::Result;
use crate::error::AdminError;

/// Items per page when `limit` is absent.
pub(super) const DEFAULT_LIMIT: usize = 100;

/// Most items per page.
pub(super) const MAX_LIMIT: usize = 1000;

/// A list request: the page size, where to start, and the search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PageQuery {
    /// Items per page, 1 to [`MAX_LIMIT`].
    pub(super) limit: usize,
    /// The cursor as given (checked against the collection when the page is cut).
    pub(super) cursor: Option<String>,
    /// Case-insensitive substring an item's id or name must contain.
    pub(super) q: Option<String>,
}

// === impl PageQuery ===

impl PageQuery {
    /// The query string of a list request. A parameter that is unknown, repeated or malformed is refused (400)
    /// naming it.
    pub(super) fn parse(query: Option<&str>) -> Result<Self> {
        let bad = |field: &str, why: &str| AdminError::BadRequest(format!("{field}: {why}"));
        let mut page = PageQuery {
            limit: DEFAULT_LIMIT,
            cursor: None,
            q: None,
        };
        let mut seen = std::collections::HashSet::new();
        for (name, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            let field = name.as_ref();
            if !seen.insert(field.to_owned()) {
                return Err(bad(field, "given more than once"));
            }
            match field {
                "limit" => {
                    page.limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            bad(field, &format!("must be an integer from 1 to {MAX_LIMIT}"))
                        })?;
                }
                "cursor" => page.cursor = Some(value.into_owned()),
                "q" => page.q = Some(value.to_lowercase()),
                _ => return Err(bad(field, "unknown query parameter")),
            }
        }
        Ok(page)
    }

    /// The page of `items` (each `(id, view)`) in `collection` this query asks for: sorted by id, filtered by `q`
    /// on the id and the view's `name`, starting after the cursor.
    ///
    /// # Errors
    /// 400 `cursor` when the cursor was not issued for this collection.
    pub(super) fn cut(
        &self,
        api: &AdminApi,
        collection: &str,
        mut items: Vec<(String, Value)>,
    ) -> Result<Response> {
        let after = match &self.cursor {
            Some(c) => Some(open_cursor(api, collection, c).ok_or_else(|| {
                AdminError::BadRequest(
                    "cursor: not a cursor this API returned for this list".into(),
                )
            })?),
            None => None,
        };
        items.sort_by(|a, b| a.0.cmp(&b.0));
        let matches = |(id, view): &(String, Value)| match &self.q {
            None => true,
            Some(q) => {
                id.to_lowercase().contains(q)
                    || view["name"]
                        .as_str()
                        .is_some_and(|n| n.to_lowercase().contains(q))
            }
        };
        let mut page: Vec<(String, Value)> = items
            .into_iter()
            .filter(|(id, _)| after.as_ref().is_none_or(|a| id > a))
            .filter(matches)
            .take(self.limit + 1)
            .collect();
        let next = if page.len() > self.limit {
            page.truncate(self.limit);
            page.last().map(|(id, _)| cursor_for(api, collection, id))
        } else {
            None
        };
        let items: Vec<Value> = page.into_iter().map(|(_, v)| v).collect();
        Ok(Json(json!({"items": items, "next_cursor": next})).into_response())
    }
}

/// The keyed tag binding `id` to `collection`.
fn tag(api: &AdminApi, collection: &str, id: &str) -> String {
    api.fingerprint(&format!("list cursor\n{collection}\n{id}"))
}

/// The cursor for "after `id`" in `collection`: `base64url(id).tag`.
fn cursor_for(api: &AdminApi, collection: &str, id: &str) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(id.as_bytes()),
        tag(api, collection, id)
    )
}

/// The id a cursor of `collection` names; `None` for anything this API did not issue for it.
fn open_cursor(api: &AdminApi, collection: &str, cursor: &str) -> Option<String> {
    let (encoded, given) = cursor.split_once('.')?;
    let id = String::from_utf8(URL_SAFE_NO_PAD.decode(encoded).ok()?).ok()?;
    // Both sides are public-length hex of a keyed MAC over attacker-chosen input; comparing them is not a secret
    // comparison an attacker can learn the key from, but keep it constant-time anyway.
    let want = tag(api, collection, &id);
    (aws_lc_rs::constant_time::verify_slices_are_equal(want.as_bytes(), given.as_bytes()).is_ok())
        .then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked_and_named() {
        let q = PageQuery::parse(Some("limit=5&cursor=abc&q=Bot")).unwrap();
        assert_eq!(
            q,
            PageQuery {
                limit: 5,
                cursor: Some("abc".into()),
                q: Some("bot".into())
            }
        );
        assert_eq!(PageQuery::parse(None).unwrap().limit, DEFAULT_LIMIT);
        assert_eq!(PageQuery::parse(Some("limit=1000")).unwrap().limit, 1000);
        for (query, field) in [
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=5000", "limit"),
            ("limit=-1", "limit"),
            ("limit=x", "limit"),
            ("q=a&q=b", "q"),
            ("limit=1&limit=2", "limit"),
            ("colour=red", "colour"),
        ] {
            match PageQuery::parse(Some(query)) {
                Err(AdminError::BadRequest(m)) => assert!(m.starts_with(field), "{query}: {m}"),
                other => panic!("{query}: {other:?}"),
            }
        }
    }
}
