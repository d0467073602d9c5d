//! Who is calling, and may they: authentication and role checks for every `/admin/v1` request, before any work.
//!
//! A request presents `Authorization: Bearer <token>`: the break-glass admin token (an owner, actor `admin`), or an
//! operator's own token (`idgop_<token id>_<secret>`, actor: the operator's id). Operator tokens are stored as keyed
//! hashes ([`KeyedHasher::digest`] under [`TOKEN_DOMAIN`]) and compared in constant time; an expired or revoked one
//! is refused like a wrong one (401). The route then needs a role ([`required_role`], one table); a caller below it
//! gets 403 naming the role. The [`Caller`] rides along for the handlers: as a request extension, and in a
//! task-local the write pipeline reads to attribute audit records (the handlers need not pass it on).
//!
//! Operators are read from the store into an index kept per store version: when this replica's snapshot holds a
//! newer store version (any write, here or on another replica of the same Redis), the next operator request reads
//! them again, so a revocation or role change takes effect as fast as any other write propagates.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use idguard_config::hashes::KeyedHasher;
use idguard_config::store::{AuthMethod, Kind};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::AdminApi;
use super::core::{Result, random_bytes};
use super::operators::OperatorRecord;
use crate::error::{AdminError, Internal};

/// The [`KeyedHasher::digest`] domain of operator tokens.
pub(super) const TOKEN_DOMAIN: &str = "operator-token";

/// What every operator token starts with.
pub(super) const TOKEN_PREFIX: &str = "idgop_";

/// The actor of the admin token in audit records.
pub(super) const ADMIN_ACTOR: &str = "admin";

/// Longest `x-request-id` taken from a client; a longer or odd one is replaced by a generated id.
const REQUEST_ID_MAX: usize = 128;

/// An operator's role; each includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything but secrets, and its own audit records.
    Viewer,
    /// Also changes the topology and creates and rotates credentials.
    Editor,
    /// Also manages operators, recovers the store, and reads the whole audit log.
    Owner,
}

/// Who made the request, as authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `admin` for the admin token, else the operator's id.
    pub actor: String,
    /// How they authenticated.
    pub auth: AuthMethod,
    /// Their role (the admin token is an owner).
    pub role: Role,
    /// The request's id (`x-request-id`), echoed in the answer and written in audit records.
    pub request_id: String,
}

/// A caller the console already authenticated (its session), for a request it hands the API in-process.
#[derive(Clone)]
pub(crate) struct InProcessCaller(pub(crate) Caller);

tokio::task_local! {
    /// The caller of the request this task serves (set by [`authorize`]).
    static CALLER: Caller;
}

/// One operator token as the index holds it.
#[derive(Clone)]
struct TokenEntry {
    operator: String,
    role: Role,
    hash: [u8; 32],
    expires_at: Option<u64>,
}

/// Operator tokens by token id, as read from the store at `version`.
#[derive(Default)]
pub(super) struct OperatorIndex {
    version: u64,
    tokens: HashMap<String, TokenEntry>,
    /// Directory user → (operator id, role), for console sign-in.
    users: HashMap<String, (String, Role)>,
}

// === impl Role ===

impl Role {
    /// The name used in the API and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Owner => "owner",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// === impl Caller ===

impl Caller {
    /// The caller of the request the current task serves; `None` outside [`authorize`].
    pub(super) fn current() -> Option<Caller> {
        CALLER.try_with(Clone::clone).ok()
    }
}

// === the role table ===

/// Which role a route needs: `(route prefix, to read, to change)`, first match wins. Reads are `GET` and `HEAD`;
/// every other method changes something. Routes are matched by their template (`/admin/v1/operators/{id}`).
const ROLES: &[(&str, Role, Role)] = &[
    // Operators and their tokens: the keys to the admin API itself.
    ("/admin/v1/operators", Role::Owner, Role::Owner),
    // Adopting or overwriting a shared store changes every replica's topology at once.
    ("/admin/v1/store", Role::Viewer, Role::Owner),
    // Viewers and editors read only their own records (the handler narrows the query); nothing writes it.
    ("/admin/v1/audit", Role::Viewer, Role::Owner),
    ("/admin/v1/", Role::Viewer, Role::Editor),
];

/// The role `method` on the route `template` needs. A request no route matches (404, or 405 for another method)
/// needs only to be authenticated: the router refuses it without doing anything.
pub fn required_role(method: &Method, template: Option<&str>) -> Role {
    let Some(template) = template else {
        return Role::Viewer;
    };
    let read = method == Method::GET || method == Method::HEAD;
    ROLES
        .iter()
        .find(|(prefix, _, _)| template.starts_with(prefix))
        .map_or(
            Role::Owner,
            |&(_, to_read, to_change)| {
                if read { to_read } else { to_change }
            },
        )
}

// === the middleware ===

/// Middleware on `/admin/v1`: gives the request an id, authenticates it, checks the route's role, then runs it with
/// its [`Caller`]. Answers 401 for no or a wrong, expired or revoked token, 403 naming the missing role, 503 when
/// the store cannot be read to check an operator token. Every answer carries `x-request-id`.
pub(super) async fn authorize(
    State(api): State<AdminApi>,
    mut req: Request,
    next: Next,
) -> Response {
    let request_id = request_id(&req);
    // Owned before any await: a request body is not `Sync`, so a borrow of the request may not be held across one.
    let presented = bearer(&req);
    let in_process = req.extensions_mut().remove::<InProcessCaller>();
    let authenticated = match in_process {
        Some(InProcessCaller(caller)) => Ok(Caller {
            request_id: request_id.clone(),
            ..caller
        }),
        None => authenticate(&api, presented, request_id.clone()).await,
    };
    let answer = match authenticated {
        Err(e) => e.into_response(),
        Ok(caller) => {
            let template = req
                .extensions()
                .get::<MatchedPath>()
                .map(MatchedPath::as_str);
            let needed = required_role(req.method(), template);
            if caller.role < needed {
                let what = format!("{} {}", req.method(), template.unwrap_or("this route"));
                AdminError::Forbidden { what, role: needed }.into_response()
            } else {
                req.extensions_mut().insert(caller.clone());
                CALLER.scope(caller, next.run(req)).await
            }
        }
    };
    let mut answer = answer;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        answer.headers_mut().insert("x-request-id", v);
    }
    answer
}

/// The client's `x-request-id` when it is short and plain (letters, digits, `-`, `_`, `.`, `:`), else a generated one.
fn request_id(req: &Request) -> String {
    let given = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= REQUEST_ID_MAX
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        });
    match given {
        Some(v) => v.to_owned(),
        None => random_bytes::<8>()
            .map(|b| b.iter().map(|x| format!("{x:02x}")).collect())
            .unwrap_or_else(|_| "unavailable".to_owned()),
    }
}

/// The bearer token of `Authorization`, if any.
fn bearer(req: &Request) -> Option<String> {
    req.headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_owned())
}

async fn authenticate(
    api: &AdminApi,
    presented: Option<String>,
    request_id: String,
) -> Result<Caller> {
    let presented = presented.ok_or(AdminError::Unauthorized)?;
    let presented = presented.as_str();
    if api.inner.token.verify(presented) {
        return Ok(Caller {
            actor: ADMIN_ACTOR.into(),
            auth: AuthMethod::AdminToken,
            role: Role::Owner,
            request_id,
        });
    }
    let Some((token_id, _)) = presented
        .strip_prefix(TOKEN_PREFIX)
        .and_then(|rest| rest.split_once('_'))
    else {
        return Err(AdminError::Unauthorized);
    };
    let index = api.operator_index().await?;
    let now = api.inner.clock.now();
    let entry = index
        .tokens
        .get(token_id)
        .filter(|e| matches(&api.inner.hasher, presented, &e.hash))
        .filter(|e| e.expires_at.is_none_or(|at| now < at))
        .ok_or(AdminError::Unauthorized)?;
    Ok(Caller {
        actor: entry.operator.clone(),
        auth: AuthMethod::OperatorToken,
        role: entry.role,
        request_id,
    })
}

/// Whether `presented` hashes to `stored`, compared in constant time.
fn matches(hasher: &KeyedHasher, presented: &str, stored: &[u8; 32]) -> bool {
    bool::from(hasher.digest(TOKEN_DOMAIN, presented).ct_eq(stored))
}

// === impl AdminApi ===

impl AdminApi {
    /// The operator the directory user `user` is bound to, with its role, as of the newest store version this
    /// replica has seen; `None` when no operator names the user.
    ///
    /// # Errors
    /// The store failures of reading the operators.
    pub(crate) async fn operator_of_user(&self, user: &str) -> Result<Option<(String, Role)>> {
        Ok(self.operator_index().await?.users.get(user).cloned())
    }

    /// Whether `presented` is the break-glass admin token (constant time).
    pub(crate) fn is_admin_token(&self, presented: &str) -> bool {
        self.inner.token.verify(presented)
    }

    /// The clock operator tokens and console sessions are judged on.
    pub(crate) fn clock(&self) -> &idguard_config::Clock {
        &self.inner.clock
    }

    /// The operator index, read again from the store when this replica's snapshot holds a newer store version
    /// than the one it was read at.
    ///
    /// # Errors
    /// [`AdminError::StoreUnavailable`] (and the other store failures) when it must be read and cannot be.
    async fn operator_index(&self) -> Result<Arc<OperatorIndex>> {
        let wanted = self.snapshot().store_version;
        let cached = self
            .inner
            .operators
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .filter(|i| i.version >= wanted)
            .cloned();
        if let Some(index) = cached {
            return Ok(index);
        }
        let index = self
            .blocking(|api| {
                let (version, objects) =
                    api.inner.store.load().map_err(super::write::store_error)?;
                OperatorIndex::of(version, &objects).map(Arc::new)
            })
            .await?;
        let mut slot = self
            .inner
            .operators
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.as_ref().is_none_or(|i| i.version <= index.version) {
            *slot = Some(index.clone());
        }
        Ok(index)
    }
}

// === impl OperatorIndex ===

impl OperatorIndex {
    /// The tokens of the operators among `objects`, read at store version `version`.
    ///
    /// # Errors
    /// [`Internal::Corrupt`] for an operator record that does not decode.
    fn of(version: u64, objects: &[idguard_config::store::StoredObject]) -> Result<Self> {
        let mut tokens = HashMap::new();
        let mut users = HashMap::new();
        for o in objects.iter().filter(|o| o.kind == Kind::Operator) {
            let op: OperatorRecord = serde_json::from_value(o.body.clone())
                .map_err(|e| AdminError::corrupt(&format!("operator/{}", o.id), &e.to_string()))?;
            if let Some(user) = &op.user {
                users.insert(user.clone(), (op.id.clone(), op.role));
            }
            for t in &op.tokens {
                let hash = unhex(&t.hash)
                    .ok_or_else(|| Internal::Corrupt(format!("operator/{}: token hash", o.id)))?;
                tokens.insert(
                    t.id.clone(),
                    TokenEntry {
                        operator: op.id.clone(),
                        role: op.role,
                        hash,
                        expires_at: t.expires_at,
                    },
                );
            }
        }
        Ok(Self {
            version,
            tokens,
            users,
        })
    }
}

fn unhex(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_needs_the_role_of_the_table() {
        let role = |m: Method, p: &str| required_role(&m, Some(p));
        assert_eq!(role(Method::GET, "/admin/v1/agents"), Role::Viewer);
        assert_eq!(role(Method::HEAD, "/admin/v1/agents/{id}"), Role::Viewer);
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert_eq!(role(m.clone(), "/admin/v1/agents"), Role::Editor, "{m}");
            assert_eq!(role(m.clone(), "/admin/v1/credentials/{id}"), Role::Editor);
            assert_eq!(
                role(m.clone(), "/admin/v1/operators/{id}/tokens"),
                Role::Owner
            );
            assert_eq!(role(m.clone(), "/admin/v1/store/reseed"), Role::Owner);
            assert_eq!(role(m, "/admin/v1/audit"), Role::Owner);
        }
        assert_eq!(role(Method::GET, "/admin/v1/operators"), Role::Owner);
        assert_eq!(role(Method::GET, "/admin/v1/operators/{id}"), Role::Owner);
        assert_eq!(role(Method::GET, "/admin/v1/audit"), Role::Viewer);
        assert_eq!(role(Method::GET, "/admin/v1/store"), Role::Viewer);
        // A route outside the table needs the most; no route at all only authentication.
        assert_eq!(role(Method::GET, "/elsewhere"), Role::Owner);
        assert_eq!(required_role(&Method::POST, None), Role::Viewer);
        assert!(Role::Viewer < Role::Editor && Role::Editor < Role::Owner);
    }

    #[test]
    fn every_documented_operation_has_a_role() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("openapi.json")).expect("the document parses");
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("operations").keys() {
                let m = match method.as_str() {
                    "get" => Method::GET,
                    "post" => Method::POST,
                    "put" => Method::PUT,
                    "patch" => Method::PATCH,
                    "delete" => Method::DELETE,
                    _ => continue,
                };
                let role = required_role(&m, Some(path));
                if path.starts_with("/admin/v1/operators") {
                    assert_eq!(role, Role::Owner, "{method} {path}");
                } else if m == Method::GET {
                    assert_eq!(role, Role::Viewer, "{method} {path}");
                } else {
                    assert!(role >= Role::Editor, "{method} {path}");
                }
            }
        }
    }

    #[test]
    fn tokens_match_only_their_own_hash() {
        let hasher = KeyedHasher::new(&[7u8; 32]);
        let stored = hasher.digest(TOKEN_DOMAIN, "idgop_t1_secret");
        assert!(matches(&hasher, "idgop_t1_secret", &stored));
        assert!(!matches(&hasher, "idgop_t1_secreT", &stored));
        assert!(!matches(
            &KeyedHasher::new(&[8u8; 32]),
            "idgop_t1_secret",
            &stored
        ));
        let hex: String = stored.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(unhex(&hex), Some(stored));
        assert_eq!(unhex("zz"), None);
    }
}
