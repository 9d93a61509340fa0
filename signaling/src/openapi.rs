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
        crate::oidc::methods, crate::oidc::start, crate::oidc::callback,
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
        crate::act::http::show, crate::act::http::form, crate::act::http::pdf,
        crate::act::http::signature_file, crate::act::http::begin, crate::act::http::sign,
        crate::act::http::refuse, crate::act::http::bundle,
        crate::signing::http::ca_pem, crate::signing::http::challenge,
        crate::signing::http::register, crate::signing::http::list_certificates,
        crate::results::accept, crate::results::list, crate::results::revoke,
        crate::orgs::list_control_bodies, crate::orgs::create_control_body,
        crate::orgs::assign_control_body, crate::orgs::create_link, crate::orgs::revoke_link,
        crate::orgs::sign_in,
        crate::prescriptions::http::issue, crate::prescriptions::http::list,
        crate::prescriptions::http::show, crate::prescriptions::http::add_proof,
        crate::prescriptions::http::decide, crate::prescriptions::http::serve_proof,
        crate::prescriptions::http::export, crate::prescriptions::document::pdf,
        crate::notify::http::add_business_contact, crate::notify::http::list_contacts,
        crate::notify::http::remove_contact, crate::notify::http::add_own_contact,
        crate::notify::http::deliveries, crate::notify::http::retry_delivery,
        crate::notify::http::reschedule,
        crate::notify::http::list_templates, crate::notify::http::change_template,
        crate::notify::http::push_key, crate::notify::http::add_own_subscription,
        crate::notify::http::add_business_subscription,
        crate::onsite::queue, crate::onsite::track,
        crate::ratings::http::criteria, crate::ratings::http::new_criteria,
        crate::ratings::http::show, crate::ratings::http::give, crate::ratings::http::change,
        crate::ratings::http::stats_json, crate::ratings::http::stats_csv,
        crate::ratings::http::stats_svg, crate::ratings::http::public_json,
        crate::ratings::http::public_svg, crate::ratings::http::set_head,
        crate::devcheck::probe_config, crate::devcheck::probe, crate::devcheck::submit, crate::devcheck::list,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail, crate::uploads::Uploaded)),
    tags((name = "auth"), (name = "users"), (name = "templates"), (name = "inspections"), (name = "invitations"), (name = "live"), (name = "recordings"), (name = "evidence"), (name = "act"), (name = "signing"), (name = "results"), (name = "organisations"), (name = "prescriptions"), (name = "notices"), (name = "ratings"), (name = "device-check"))
)]
pub struct ApiDoc;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/openapi.json",
        get(|| async { Json(ApiDoc::openapi()) }),
    )
}
