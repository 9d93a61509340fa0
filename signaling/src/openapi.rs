//! The generated OpenAPI document at `/api/openapi.json`.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

use crate::AppState;

/// The API description, generated from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(title = "Inspector API", description = "Remote inspections over live video. Errors: {\"error\":{\"code\",\"message\"}}."),
    paths(
        crate::users::login, crate::users::logout, crate::users::me,
        crate::users::list, crate::users::create, crate::users::disable,
        crate::templates::list, crate::templates::show, crate::templates::create,
        crate::inspections::list, crate::inspections::create, crate::inspections::show,
        crate::inspections::change_status, crate::inspections::invite,
        crate::inspections::list_invitations, crate::inspections::revoke,
        crate::inspections::participants, crate::inspections::accept,
        crate::live::socket,
        crate::evidence::recording, crate::evidence::manifest, crate::evidence::chapters,
        crate::evidence::state, crate::evidence::events,
        crate::uploads::upload, crate::uploads::serve,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail, crate::uploads::Uploaded)),
    tags((name = "auth"), (name = "users"), (name = "templates"), (name = "inspections"), (name = "invitations"), (name = "live"), (name = "recordings"), (name = "evidence"))
)]
pub struct ApiDoc;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/openapi.json",
        get(|| async { Json(ApiDoc::openapi()) }),
    )
}
