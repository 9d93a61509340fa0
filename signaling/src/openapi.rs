//! The generated OpenAPI document at `/api/openapi.json`.

use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

use crate::AppState;

/// The API description, generated from the handlers' annotations.
#[derive(OpenApi)]
#[openapi(
    info(title = "Inspector API", description = "Remote inspections over live video. Errors: {\"error\":{\"code\",\"message\"}}. Systems authenticate with `Authorization: Bearer <API token>` (no CSRF header); staff with the session cookie."),
    paths(
        crate::users::login, crate::users::logout, crate::users::me,
        crate::oidc::methods, crate::oidc::start, crate::oidc::callback,
        crate::users::list, crate::users::create, crate::users::disable,
        crate::templates::list, crate::templates::show, crate::templates::create,
        crate::inspections::list, crate::inspections::create, crate::inspections::show,
        crate::inspections::change_status, crate::inspections::set_external_ids,
        crate::inspections::invite,
        crate::inspections::list_invitations, crate::inspections::revoke,
        crate::inspections::participants, crate::inspections::accept,
        crate::live::socket,
        crate::evidence::recording, crate::evidence::audio_track, crate::evidence::manifest, crate::evidence::chapters,
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
        crate::live::uplink::uplink,
        crate::tokens::list, crate::tokens::create, crate::tokens::revoke, crate::tokens::calls,
        crate::webhooks::http::list, crate::webhooks::http::create, crate::webhooks::http::change,
        crate::webhooks::http::remove, crate::webhooks::http::deliveries, crate::webhooks::http::replay,
    ),
    modifiers(&BearerToken),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail, crate::uploads::Uploaded)),
    tags((name = "auth"), (name = "users"), (name = "templates"), (name = "inspections"), (name = "invitations"), (name = "live"), (name = "recordings"), (name = "evidence"), (name = "act"), (name = "signing"), (name = "results"), (name = "organisations"), (name = "prescriptions"), (name = "notices"), (name = "ratings"), (name = "device-check"), (name = "webhooks"), (name = "tokens", description = "API tokens for other systems: send `Authorization: Bearer <secret>`; the scopes each route needs are in docs/ARCHITECTURE.md (API tokens)"))
)]
pub struct ApiDoc;

/// Declares the API tokens' bearer scheme (`tokens.rs`); which routes take it is in
/// docs/ARCHITECTURE.md, "API tokens".
struct BearerToken;

impl utoipa::Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.description = Some(
            "An API token (`insp_…`) made by an administrator; scopes `results:read`, \
             `inspections:write`, `templates:write`"
                .into(),
        );
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("api_token", SecurityScheme::Http(http));
    }
}

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/openapi.json",
        get(|| async { Json(ApiDoc::openapi()) }),
    )
}
