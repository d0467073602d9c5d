//! The OpenAPI 3 description of the admin API, served without the token at `GET /admin/v1/openapi.json`; the
//! document itself is `openapi.json` beside this file.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// `GET /admin/v1/openapi.json`
pub(super) async fn document() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}
