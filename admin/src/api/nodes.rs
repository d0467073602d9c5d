//! LLM and external-service nodes: `/admin/v1/llm` and `/admin/v1/external`. A node's body is its routing-file
//! entry as JSON; its upstream (and an OAuth token endpoint) must pass the admin API's SSRF rules. Node ids are
//! unique across LLM, external and enterprise nodes. A node that agents may call is not deleted unless the request
//! asks for the cascade (`?cascade=true`), which withdraws those outbound authorizations in the same commit.

use std::borrow::Cow;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use idguard_config::raw::{RawConfig, RawNode};
use idguard_config::store::Kind;
use serde_json::{Value, json};

use super::AdminApi;
use super::authorizations::{Outbound, withdraw};
use super::core::{
    Current, Idempotency, Resource, Result, check_upstream, create, delete as delete_one, exists,
    file_managed, get as get_one, list, parse,
};
use super::usage_graph::{UsedBy, agents_calling};
use super::write::Plan;

/// LLM nodes (`[[llm]]`).
pub(super) struct Llm;

/// External-service nodes (`[[external]]`).
pub(super) struct External;

/// The two node kinds differ only in their kind and their list in the routing file.
macro_rules! node_resource {
    ($name:ident, $kind:expr, $list:ident) => {
        impl Resource for $name {
            const KIND: Kind = $kind;
            type Raw = RawNode;

            fn file(file: &RawConfig) -> &[RawNode] {
                &file.$list
            }

            fn id(raw: &RawNode) -> Cow<'_, str> {
                Cow::Borrowed(&raw.id)
            }

            fn view(_: &AdminApi, n: &RawNode) -> Value {
                node_view(n, Self::KIND)
            }

            fn check_free(cur: Current<'_>, id: &str) -> Result<()> {
                node_id_free(cur, id, Self::KIND)
            }

            fn used_by(cur: Current<'_>, id: &str) -> Option<UsedBy> {
                Some(agents_calling(cur, id))
            }

            fn withdraw_uses(cur: Current<'_>, id: &str, plan: &mut Plan) -> bool {
                withdraw::<Outbound>(cur, plan, |e| e.node == id);
                true
            }
        }
    };
}

node_resource!(Llm, Kind::Llm, llm);
node_resource!(External, Kind::External, external);

/// The LLM and external node routes (nodes are replaced, not changed: delete and create).
pub(super) fn routes() -> Router<AdminApi> {
    Router::new()
        .route("/admin/v1/llm", get(list::<Llm>).post(create_node::<Llm>))
        .route(
            "/admin/v1/llm/{id}",
            get(get_one::<Llm>).delete(delete_one::<Llm>),
        )
        .route(
            "/admin/v1/external",
            get(list::<External>).post(create_node::<External>),
        )
        .route(
            "/admin/v1/external/{id}",
            get(get_one::<External>).delete(delete_one::<External>),
        )
}

/// `POST /admin/v1/llm` or `/admin/v1/external`: the body is an `[[llm]]` or `[[external]]` entry as JSON.
async fn create_node<N: Resource<Raw = RawNode>>(
    State(api): State<AdminApi>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let raw: RawNode = parse(&body)?;
    let kind = N::KIND.as_str();
    let route = format!("POST /admin/v1/{kind}");
    let idempotency = match Idempotency::begin(&api, &headers, &route, &body).await? {
        Ok(fresh) => fresh,
        Err(replayed) => return Ok(replayed),
    };
    check_upstream(&api, Some(&raw.upstream), &format!("{kind}.upstream")).await?;
    // An OAuth token endpoint is an upstream too: the client secret goes there.
    check_upstream(
        &api,
        raw.oauth.as_ref().map(|o| &o.token_url),
        &format!("{kind}.oauth.token_url"),
    )
    .await?;
    create::<N>(&api, idempotency, raw.id.clone(), move |_| Ok(raw)).await
}

fn node_view(n: &RawNode, kind: Kind) -> Value {
    let mut v = serde_json::to_value(n).unwrap_or(Value::Null);
    v["kind"] = json!(kind.as_str());
    v
}

/// A node id must be free among the file's LLM and external nodes (409 `file_managed`) and the store's LLM,
/// external and enterprise nodes (409 `exists`).
fn node_id_free(cur: Current<'_>, id: &str, kind: Kind) -> Result<()> {
    if cur.declares::<Llm>(id) || cur.declares::<External>(id) {
        return Err(file_managed(kind, id));
    }
    if [Kind::Llm, Kind::External, Kind::Enterprise]
        .iter()
        .any(|k| cur.stored(*k, id).is_some())
    {
        return Err(exists(kind, id));
    }
    Ok(())
}
