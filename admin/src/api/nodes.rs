//! LLM and external-service nodes: `/admin/v1/llm` and `/admin/v1/external`. A node's body is its routing-file
//! entry as JSON; its upstream (and an OAuth token endpoint) must pass the admin API's SSRF rules. Node ids are
//! unique across LLM, external and enterprise nodes. A node that agents may call is not deleted unless the request
//! asks for the cascade (`?cascade=true`), which withdraws those outbound authorizations in the same commit.
//!
//! A stored node is changed in place with `PATCH` (name, upstream, injection, methods, credential, OAuth client):
//! its id is immutable, so every outbound authorization to it stays. A new upstream or token endpoint passes the
//! same SSRF rules as a create, and a new credential must be bound to hosts (corpus J04) that include the
//! destination, as on create.

use std::borrow::Cow;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use idguard_config::raw::{RawConfig, RawCredential, RawNode, RawOAuthClient};
use idguard_config::store::Kind;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AdminApi;
use super::authorizations::{Outbound, withdraw};
use super::core::{
    Current, Idempotency, Resource, Result, answer_stored, change, check_upstream, create,
    delete as delete_one, exists, file_managed, get as get_one, if_match, invalid, list, parse,
    unchanged,
};
use super::credentials::Credentials;
use super::usage_graph::{UsedBy, agents_calling};
use super::write::Plan;

/// LLM nodes (`[[llm]]`).
pub(super) struct Llm;

/// External-service nodes (`[[external]]`).
pub(super) struct External;

/// `PATCH` of a node: every field but `id` (immutable) may be given; those given replace the stored ones.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchNode {
    id: Option<String>,
    name: Option<String>,
    upstream: Option<String>,
    style: Option<String>,
    header: Option<String>,
    prefix: Option<String>,
    query: Option<String>,
    credential: Option<String>,
    forward_identity: Option<bool>,
    methods: Option<Vec<String>>,
    oauth: Option<RawOAuthClient>,
}

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

/// The LLM and external node routes.
pub(super) fn routes() -> Router<AdminApi> {
    Router::new()
        .route("/admin/v1/llm", get(list::<Llm>).post(create_node::<Llm>))
        .route(
            "/admin/v1/llm/{id}",
            get(get_one::<Llm>)
                .patch(patch_node::<Llm>)
                .delete(delete_one::<Llm>),
        )
        .route(
            "/admin/v1/external",
            get(list::<External>).post(create_node::<External>),
        )
        .route(
            "/admin/v1/external/{id}",
            get(get_one::<External>)
                .patch(patch_node::<External>)
                .delete(delete_one::<External>),
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

/// `PATCH /admin/v1/llm/{id}` or `/admin/v1/external/{id}`: the fields given replace the stored ones, with
/// `If-Match`; the id is immutable (409), so the node's outbound authorizations stay. The whole topology is then
/// validated as on create (an `oauth` client on an LLM node, a style without its `header`, a credential of the
/// wrong kind or whose hosts do not include the upstream are 422).
async fn patch_node<N: Resource<Raw = RawNode>>(
    State(api): State<AdminApi>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let req: PatchNode = parse(&body)?;
    let kind = N::KIND.as_str();
    check_upstream(&api, req.upstream.as_ref(), &format!("{kind}.upstream")).await?;
    check_upstream(
        &api,
        req.oauth.as_ref().map(|o| &o.token_url),
        &format!("{kind}.oauth.token_url"),
    )
    .await?;
    let path_id = id.clone();
    let (raw, version, ()) = change::<N, _>(&api, id, if_match(&headers), move |_, cur, raw, _| {
        unchanged("id", req.id.as_ref(), Some(&path_id))?;
        if let Some(credential) = &req.credential {
            bound_to_hosts(cur, credential, kind)?;
        }
        let PatchNode {
            id: _,
            name,
            upstream,
            style,
            header,
            prefix,
            query,
            credential,
            forward_identity,
            methods,
            oauth,
        } = req;
        raw.name = name.or(raw.name.take());
        raw.upstream = upstream.unwrap_or_else(|| std::mem::take(&mut raw.upstream));
        raw.style = style.unwrap_or_else(|| std::mem::take(&mut raw.style));
        raw.header = header.or(raw.header.take());
        raw.prefix = prefix.or(raw.prefix.take());
        raw.query = query.or(raw.query.take());
        raw.credential = credential.unwrap_or_else(|| std::mem::take(&mut raw.credential));
        raw.forward_identity = forward_identity.or(raw.forward_identity);
        raw.methods = methods.or(raw.methods.take());
        raw.oauth = oauth.or(raw.oauth.take());
        Ok(())
    })
    .await?;
    Ok(answer_stored::<N>(&api, StatusCode::OK, &raw, version))
}

/// A node changed through the API may switch only to a credential bound to hosts (corpus J04), as on create;
/// validation then checks that the hosts include the node's destination. An unknown credential is left to
/// validation, which names it.
fn bound_to_hosts(cur: Current<'_>, credential: &str, kind: &str) -> Result<()> {
    let in_file = Credentials::file(cur.file)
        .iter()
        .find(|c| c.id == credential);
    let stored = cur
        .stored(Kind::Credential, credential)
        .and_then(|o| serde_json::from_value::<RawCredential>(o.body.clone()).ok());
    match in_file.cloned().or(stored) {
        Some(c) if c.hosts.is_none() => Err(invalid(
            &format!("{kind}.credential"),
            format!(
                "credential {credential:?} is not bound to any host: what the admin API changes may only use a \
                 credential whose hosts include its destination"
            ),
        )),
        _ => Ok(()),
    }
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
