//! Enterprise services: `/admin/v1/enterprise`. A service has a name, an audience identifier (immutable once
//! saved) and permissions; a permission removed here is removed from every API-managed outbound authorization that
//! granted it. A service that agents may call is not deleted unless the request asks for the cascade
//! (`?cascade=true`), which withdraws those authorizations in the same commit.

use std::borrow::Cow;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use idguard_config::raw::{RawConfig, RawPermission, RawService};
use idguard_config::store::Kind;
use serde::Deserialize;
use serde_json::Value;

use super::AdminApi;
use super::authorizations::{Outbound, narrow, withdraw};
use super::core::{
    Current, Idempotency, Resource, Result, answer_stored, change, check_upstream, create,
    delete as delete_one, get as get_one, if_match, list, parse, unchanged,
};
use super::usage_graph::{UsedBy, agents_calling};
use super::write::Plan;

/// Enterprise services.
pub(super) struct Enterprise;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchService {
    id: Option<String>,
    name: Option<String>,
    audience: Option<String>,
    upstream: Option<String>,
    permissions: Option<Vec<RawPermission>>,
}

// === impl Enterprise ===

impl Resource for Enterprise {
    const KIND: Kind = Kind::Enterprise;
    type Raw = RawService;

    fn file(file: &RawConfig) -> &[RawService] {
        &file.enterprise
    }

    fn id(raw: &RawService) -> Cow<'_, str> {
        Cow::Borrowed(&raw.id)
    }

    fn view(_: &AdminApi, svc: &RawService) -> Value {
        serde_json::to_value(svc).unwrap_or(Value::Null)
    }

    fn used_by(cur: Current<'_>, id: &str) -> Option<UsedBy> {
        Some(agents_calling(cur, id))
    }

    fn withdraw_uses(cur: Current<'_>, id: &str, plan: &mut Plan) -> bool {
        withdraw::<Outbound>(cur, plan, |e| e.node == id);
        true
    }
}

/// The enterprise service routes.
pub(super) fn routes() -> Router<AdminApi> {
    Router::new()
        .route(
            "/admin/v1/enterprise",
            get(list::<Enterprise>).post(create_service),
        )
        .route(
            "/admin/v1/enterprise/{id}",
            get(get_one::<Enterprise>)
                .patch(patch_service)
                .delete(delete_one::<Enterprise>),
        )
}

/// `POST /admin/v1/enterprise`: name, audience identifier (immutable once saved), permissions.
async fn create_service(
    State(api): State<AdminApi>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let raw: RawService = parse(&body)?;
    let idempotency =
        match Idempotency::begin(&api, &headers, "POST /admin/v1/enterprise", &body).await? {
            Ok(fresh) => fresh,
            Err(replayed) => return Ok(replayed),
        };
    check_upstream(&api, raw.upstream.as_ref(), "enterprise.upstream").await?;
    // An outside exchange endpoint receives agents' tokens: the same rules as an upstream.
    check_upstream(
        &api,
        raw.exchange.as_ref().map(|x| &x.token_url),
        "enterprise.exchange.token_url",
    )
    .await?;
    create::<Enterprise>(&api, idempotency, raw.id.clone(), move |_| Ok(raw)).await
}

/// `PATCH /admin/v1/enterprise/{id}`: name, upstream, permissions. `id` and `audience` are immutable. A
/// permission removed here is removed from every API-managed authorization that granted it.
async fn patch_service(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let req: PatchService = parse(&body)?;
    check_upstream(&api, req.upstream.as_ref(), "enterprise.upstream").await?;
    let path_id = id.clone();
    let (raw, version, ()) =
        change::<Enterprise, _>(&api, id, if_match(&headers), move |_, cur, raw, plan| {
            unchanged("id", req.id.as_ref(), Some(&path_id))?;
            unchanged("audience", req.audience.as_ref(), Some(&raw.audience))?;
            if let Some(name) = req.name {
                raw.name = Some(name);
            }
            if let Some(upstream) = req.upstream {
                raw.upstream = Some(upstream);
            }
            if let Some(permissions) = req.permissions {
                let kept: Vec<String> = permissions.iter().map(|p| p.scope.clone()).collect();
                narrow::<Outbound>(
                    cur,
                    plan,
                    |e| e.node == path_id,
                    |s| kept.iter().any(|k| k == s),
                )?;
                raw.permissions = permissions;
            }
            Ok(())
        })
        .await?;
    Ok(answer_stored::<Enterprise>(
        &api,
        StatusCode::OK,
        &raw,
        version,
    ))
}
