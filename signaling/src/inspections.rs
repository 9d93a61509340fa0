//! Inspections, their lifecycle, invitations and participants.
//!
//! Access rule, checked on every handler through [`load_for`]: admins and reviewers see every
//! inspection, an inspector sees its own, an invitee sees only the inspection of its
//! invitation. What a caller may not see answers 404, so ids of other inspections leak nothing.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use uuid::Uuid;

use crate::auth::{self, Caller, Role, GUEST_COOKIE};
use crate::db::{corrupt, from_micros, micros, now_micros, RowExt};
use crate::domain::{Coordinates, Inn, Kind, Mode, Status};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::ApiJson;
use crate::templates::{self, Item};
use crate::AppState;

/// The inspected business, as stored (its INN was checked when it was stored, and is checked
/// again when read back).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Business {
    /// Name.
    pub name: String,
    /// Taxpayer number (ИНН), check digits validated.
    pub inn: Inn,
    /// Address of the site.
    pub address: String,
    /// Registered site latitude.
    pub lat: Option<f64>,
    /// Registered site longitude.
    pub lon: Option<f64>,
}

/// The inspected business as a create request gives it (parsed into [`Business`]).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewBusiness {
    /// Name, 1–500 characters.
    pub name: String,
    /// Taxpayer number (ИНН): 10 or 12 digits with valid check digits.
    pub inn: String,
    /// Address of the site.
    pub address: String,
    /// Registered site latitude.
    pub lat: Option<f64>,
    /// Registered site longitude.
    pub lon: Option<f64>,
}

/// A user shown by reference.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserRef {
    /// Id.
    pub id: Uuid,
    /// Shown name.
    pub display_name: String,
}

/// The template an inspection pinned.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TemplateRef {
    /// Id.
    pub id: Uuid,
    /// Title.
    pub title: String,
    /// Version.
    pub version: i64,
    /// The normative acts it checks.
    pub legal_basis: String,
}

/// An inspection.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Inspection {
    /// Id.
    pub id: Uuid,
    /// Control or preventive.
    pub kind: Kind,
    /// Remote or on site.
    pub mode: Mode,
    /// Title.
    pub title: String,
    /// Lifecycle status.
    pub status: Status,
    /// Planned start.
    pub scheduled_at: chrono::DateTime<chrono::Utc>,
    /// When it went live.
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it finished.
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Responsible inspector.
    pub inspector: UserRef,
    /// Pinned checklist template (none for an inspection without a checklist).
    pub template: Option<TemplateRef>,
    /// The inspected business.
    pub business: Business,
    /// The IANA time zone the inspection's times are shown in: the site's zone when the site
    /// has coordinates, else the zone of the browser that created it, else `UTC`.
    pub time_zone: String,
    /// Language of the act: `ru` (default) or `en`.
    pub language: String,
    /// The event's number in the unified register of control events (ЕРКНМ): 10–25 digits,
    /// unique in this installation.
    pub erknm_number: Option<String>,
    /// The id an external system (of the control body) gave the inspection: 1–100 printable
    /// characters, not unique.
    pub external_id: Option<String>,
    /// The control body of the responsible inspector (what API tokens are scoped by).
    #[serde(skip)]
    pub inspector_control_body: Option<String>,
    /// Checklist items (only in single-inspection answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<Item>>,
}

impl Inspection {
    /// The registered site, if both coordinates are known.
    pub fn site(&self) -> Option<Coordinates> {
        Some(Coordinates {
            lat: self.business.lat?,
            lon: self.business.lon?,
        })
    }
}

const SELECT: &str =
    "SELECT p.id, p.kind, p.mode, p.title, p.status, p.scheduled_at, p.started_at, \
    p.finished_at, p.inspector_id, u.display_name, p.template_id, t.title, t.version, \
    p.business_name, p.business_inn, p.business_address, p.site_lat, p.site_lon, p.time_zone, \
    t.legal_basis, p.language, p.erknm_number, p.external_id, u.control_body_id \
    FROM inspections p JOIN users u ON u.id = p.inspector_id \
    LEFT JOIN templates t ON t.id = p.template_id";

fn from_row(r: &sqlx::any::AnyRow) -> ApiResult<Inspection> {
    let template = match r.col::<Option<String>>(10)? {
        None => None,
        Some(id) => Some(TemplateRef {
            id: Uuid::parse_str(&id).map_err(|_| corrupt("template id", id))?,
            // The join finds the template the foreign key guarantees.
            title: r
                .col::<Option<String>>(11)?
                .ok_or_else(|| corrupt("template", "missing title"))?,
            version: r
                .col::<Option<i64>>(12)?
                .ok_or_else(|| corrupt("template", "missing version"))?,
            legal_basis: r
                .col::<Option<String>>(19)?
                .ok_or_else(|| corrupt("template", "missing legal basis"))?,
        }),
    };
    Ok(Inspection {
        id: r.uuid(0)?,
        kind: r.parsed(1, "inspection kind", Kind::parse)?,
        mode: r.parsed(2, "inspection mode", Mode::parse)?,
        title: r.col(3)?,
        status: r.parsed(4, "inspection status", Status::parse)?,
        scheduled_at: r.time(5)?,
        started_at: r.opt_time(6)?,
        finished_at: r.opt_time(7)?,
        inspector: UserRef {
            id: r.uuid(8)?,
            display_name: r.col(9)?,
        },
        template,
        business: Business {
            name: r.col(13)?,
            inn: r.parsed(14, "INN", |s| Inn::parse(s).ok())?,
            address: r.col(15)?,
            lat: r.col(16)?,
            lon: r.col(17)?,
        },
        time_zone: r.col::<Option<String>>(18)?.unwrap_or_else(|| "UTC".into()),
        language: r.parsed(20, "act language", |s| {
            matches!(s, "ru" | "en").then(|| s.to_string())
        })?,
        erknm_number: r.col(21)?,
        external_id: r.col(22)?,
        inspector_control_body: r.col(23)?,
        items: None,
    })
}

/// Loads an inspection with its items, without access checks (for trusted server code).
pub async fn load(db: &AnyPool, id: Uuid) -> ApiResult<Option<Inspection>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE p.id = $1")))
        .bind(id.to_string())
        .fetch_optional(db)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let mut insp = from_row(&row)?;
    insp.items = Some(match &insp.template {
        Some(t) => templates::items(db, &t.id.to_string()).await?,
        None => Vec::new(),
    });
    Ok(Some(insp))
}

/// What a caller may do with an inspection it can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read only (reviewers, other staff of an admin's view, invitees).
    Read,
    /// Run it: the responsible inspector or an admin.
    Manage,
}

/// The caller's access to an inspection, or `None` when it may not know it exists.
pub fn access(caller: &Caller, insp: &Inspection) -> Option<Access> {
    match caller {
        // An API token sees its control body's inspections (`tokens.rs`); its scopes decide
        // which endpoints it reaches.
        Caller::Staff(s) if s.token.is_some() => {
            let t = s.token.as_ref()?;
            (t.control_body_id == insp.inspector_control_body).then_some(
                if t.has(crate::tokens::Scope::InspectionsWrite) {
                    Access::Manage
                } else {
                    Access::Read
                },
            )
        }
        Caller::Staff(s) => match s.role {
            Role::Admin => Some(Access::Manage),
            Role::Reviewer => Some(Access::Read),
            Role::Inspector if s.id == insp.inspector.id => Some(Access::Manage),
            Role::Inspector => None,
        },
        Caller::Guest(g) if g.inspection_id == insp.id => Some(Access::Read),
        Caller::Guest(_) => None,
        // A representative sees its own organisation's inspections, by INN.
        Caller::Business(b) if b.inn == insp.business.inn.as_str() => Some(Access::Read),
        Caller::Business(_) => None,
    }
}

/// Whether a caller who may see an inspection may also take part in it live (its socket,
/// evidence uploads): staff always (their role decides what they may do there), the business
/// only through its live invitation. The durable results access
/// ([`crate::auth::GuestVia::Results`]) reads, signs and refuses the act, nothing more.
pub fn takes_part(caller: &Caller, insp: &Inspection) -> bool {
    match caller {
        Caller::Staff(_) => true,
        // An invitation is a key to the live room only until the end (docs/security.md).
        Caller::Guest(g) => g.via == crate::auth::GuestVia::Invitation && !insp.status.is_over(),
        // The organisation's session reads results and answers prescriptions, not live.
        Caller::Business(_) => false,
    }
}

/// Whether the caller may read the raw evidence (the whole recording, its chapters, the event
/// log, the bundle): staff and the live guest always, the business's results access and its
/// organisation's session only when `business_raw_access` is set (docs/security.md says why
/// it is off by default).
pub fn may_read_raw(config: &crate::Config, caller: &Caller) -> bool {
    match caller {
        Caller::Staff(_) => true,
        Caller::Guest(g) => {
            g.via == crate::auth::GuestVia::Invitation || config.business_raw_access
        }
        Caller::Business(_) => config.business_raw_access,
    }
}

/// Loads an inspection the caller may see, requiring `need` (404 if unseen, 403 if read-only).
pub async fn load_for(
    db: &AnyPool,
    caller: &Caller,
    id: Uuid,
    need: Access,
) -> ApiResult<(Inspection, Access)> {
    let insp = load(db, id)
        .await?
        .ok_or(ApiError::NotFound("inspection"))?;
    let have = access(caller, &insp).ok_or(ApiError::NotFound("inspection"))?;
    if need == Access::Manage && have != Access::Manage {
        return Err(ApiError::Forbidden);
    }
    Ok((insp, have))
}

/// Create-inspection request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInspection {
    /// Control or preventive.
    pub kind: Kind,
    /// Remote or on site.
    pub mode: Mode,
    /// Title.
    pub title: String,
    /// Template, or null for an inspection without a checklist.
    pub template_id: Option<Uuid>,
    /// Planned start (RFC 3339).
    pub scheduled_at: chrono::DateTime<chrono::Utc>,
    /// The business.
    pub business: NewBusiness,
    /// Responsible inspector (admins only; defaults to the caller).
    pub inspector_id: Option<Uuid>,
    /// The creating browser's IANA time zone, used when the site has no coordinates (the
    /// site's own zone wins otherwise).
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Language of the act: `ru` (default) or `en`.
    pub language: Option<String>,
    /// The ЕРКНМ register number: 10–25 digits (unique; 409 `erknm_taken`).
    #[serde(default)]
    pub erknm_number: Option<String>,
    /// An external system's id: 1–100 characters, no control characters.
    #[serde(default)]
    pub external_id: Option<String>,
}

/// The external ids of an inspection, as set later (`PUT …/external-ids`): both are replaced,
/// null clears one.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExternalIds {
    /// The ЕРКНМ register number: 10–25 digits, or null.
    pub erknm_number: Option<String>,
    /// An external system's id: 1–100 characters, or null.
    pub external_id: Option<String>,
}

/// Whether an ЕРКНМ register number has an accepted shape: 10–25 ASCII digits. The register's
/// numbers of control events are digit strings (20 digits today); the range leaves room for
/// the register's own changes without accepting anything that is not a number.
pub fn erknm_valid(s: &str) -> bool {
    (10..=25).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// Whether an external id is acceptable: 1–100 characters, none of them a control character
/// and not only spaces.
pub fn external_id_valid(s: &str) -> bool {
    !s.trim().is_empty() && s.chars().count() <= 100 && !s.chars().any(char::is_control)
}

/// Every invalid external id of a request, into `errors`.
fn check_external(erknm: Option<&str>, external: Option<&str>, errors: &mut Vec<FieldError>) {
    if erknm.is_some_and(|e| !erknm_valid(e)) {
        errors.push(FieldError::new("erknm_number", "erknm_invalid"));
    }
    if external.is_some_and(|e| !external_id_valid(e)) {
        errors.push(FieldError::new("external_id", "external_id_invalid"));
    }
}

/// 409 `erknm_taken` when another inspection carries this register number.
async fn check_erknm_free(db: &AnyPool, erknm: Option<&str>, except: Uuid) -> ApiResult<()> {
    let Some(e) = erknm else { return Ok(()) };
    let taken = sqlx::query("SELECT 1 FROM inspections WHERE erknm_number = $1 AND id <> $2")
        .bind(e)
        .bind(except.to_string())
        .fetch_optional(db)
        .await?;
    match taken {
        Some(_) => Err(erknm_taken()),
        None => Ok(()),
    }
}

fn erknm_taken() -> ApiError {
    ApiError::Conflict {
        code: "erknm_taken",
        message: "another inspection carries this ЕРКНМ register number".into(),
    }
}

/// List filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Only this status.
    pub status: Option<String>,
    /// Text in the title, business name, INN or address.
    pub q: Option<String>,
    /// Exactly this ЕРКНМ register number (10–25 digits; else 400 `erknm_invalid`).
    pub erknm: Option<String>,
    /// Exactly this external id (1–100 characters; else 400 `external_id_invalid`).
    pub external_id: Option<String>,
}

/// Transition request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransitionRequest {
    /// Target status.
    pub to: Status,
    /// Why the inspection is cancelled (only with `cancelled`).
    #[serde(default)]
    pub reason: Option<crate::domain::CancelReason>,
    /// The inspector's note on the cancellation, at most 1000 characters (only with
    /// `cancelled`).
    #[serde(default)]
    pub note: Option<String>,
}

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/inspections", get(list).post(create))
        .route("/api/inspections/{id}", get(show))
        .route("/api/inspections/{id}/transition", post(change_status))
        .route(
            "/api/inspections/{id}/external-ids",
            axum::routing::put(set_external_ids),
        )
        .route(
            "/api/inspections/{id}/invitations",
            get(list_invitations).post(invite),
        )
        .route(
            "/api/inspections/{id}/invitations/{inv}/revoke",
            post(revoke),
        )
        .route("/api/inspections/{id}/participants", get(participants))
        .route("/api/invitations/accept", post(accept))
}

/// The inspections a caller may see.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InspectionList {
    /// Newest scheduled first, at most 500, without checklist items.
    pub inspections: Vec<Inspection>,
}

/// The access rule ([`access`]) as a SQL condition for lists: appends to `sql` (whose
/// inspections are aliased `p`) what the caller may see, binding its values in `binds`.
/// `inspection_id` and `business_inn` name the columns that hold the listed rows' inspection
/// and business.
pub(crate) fn push_visibility(
    caller: &Caller,
    (inspection_id, business_inn): (&str, &str),
    sql: &mut String,
    binds: &mut Vec<String>,
) {
    match caller {
        Caller::Staff(s) if s.token.is_some() => {
            match s.token.as_ref().and_then(|t| t.control_body_id.clone()) {
                Some(body) => {
                    binds.push(body);
                    sql.push_str(&format!(
                        " AND p.inspector_id IN (SELECT id FROM users WHERE control_body_id = ${})",
                        binds.len()
                    ));
                }
                None => sql.push_str(
                    " AND p.inspector_id IN (SELECT id FROM users WHERE control_body_id IS NULL)",
                ),
            }
        }
        Caller::Staff(s) if s.role == Role::Inspector => {
            binds.push(s.id.to_string());
            sql.push_str(&format!(" AND p.inspector_id = ${}", binds.len()));
        }
        Caller::Staff(_) => {}
        Caller::Guest(g) => {
            binds.push(g.inspection_id.to_string());
            sql.push_str(&format!(" AND {inspection_id} = ${}", binds.len()));
        }
        Caller::Business(b) => {
            binds.push(b.inn.clone());
            sql.push_str(&format!(" AND {business_inn} = ${}", binds.len()));
        }
    }
}

/// Lists the inspections the caller may see.
#[utoipa::path(get, path = "/api/inspections", tag = "inspections", params(ListQuery),
    responses((status = 200, body = InspectionList), (status = 400, body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<InspectionList>> {
    let mut sql = format!("{SELECT} WHERE 1 = 1");
    let mut binds: Vec<String> = Vec::new();
    push_visibility(&caller, ("p.id", "p.business_inn"), &mut sql, &mut binds);
    if let Some(status) = q.status.as_deref().filter(|s| !s.is_empty()) {
        let status = Status::parse(status).ok_or_else(|| ApiError::validation("unknown status"))?;
        binds.push(status.as_str().into());
        sql.push_str(&format!(" AND p.status = ${}", binds.len()));
    }
    if let Some(e) = q.erknm.as_deref() {
        if !erknm_valid(e) {
            return Err(ApiError::Invalid {
                code: "erknm_invalid",
                message: "an ЕРКНМ register number has 10–25 digits".into(),
            });
        }
        binds.push(e.to_string());
        sql.push_str(&format!(" AND p.erknm_number = ${}", binds.len()));
    }
    if let Some(e) = q.external_id.as_deref() {
        if !external_id_valid(e) {
            return Err(ApiError::Invalid {
                code: "external_id_invalid",
                message: "an external id has 1–100 characters, none a control character".into(),
            });
        }
        binds.push(e.to_string());
        sql.push_str(&format!(" AND p.external_id = ${}", binds.len()));
    }
    if let Some(text) = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        let escaped = text
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        binds.push(format!("%{escaped}%"));
        sql.push_str(&format!(
            " AND p.search_text LIKE ${} ESCAPE '\\'",
            binds.len()
        ));
    }
    sql.push_str(" ORDER BY p.scheduled_at DESC LIMIT 500");
    // Safe: the SQL is built only from constant fragments; every value is a bind parameter.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for b in &binds {
        query = query.bind(b);
    }
    let rows = query.fetch_all(&state.db).await?;
    let inspections = rows.iter().map(from_row).collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(InspectionList { inspections }))
}

/// The `Idempotency-Key` of a create request: 1–100 characters of `[A-Za-z0-9._:-]`.
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = v.to_str().unwrap_or_default();
    let ok = (1..=100).contains(&key.len())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c));
    if !ok {
        return Err(ApiError::Invalid {
            code: "idempotency_key_invalid",
            message: "Idempotency-Key must have 1–100 characters of A–Z, a–z, 0–9, . _ : -".into(),
        });
    }
    Ok(Some(key.to_string()))
}

/// Every invalid field of a create request, all at once, and the parsed INN and site.
fn check_new(new: &NewInspection) -> Result<(Inn, Option<Coordinates>), Vec<FieldError>> {
    let mut errors = Vec::new();
    let title = new.title.trim();
    if title.is_empty() {
        errors.push(FieldError::new("title", "title_required"));
    } else if title.chars().count() > 300 {
        errors.push(FieldError::new("title", "title_too_long"));
    }
    let b = &new.business;
    if b.name.trim().is_empty() {
        errors.push(FieldError::new("business.name", "business_name_required"));
    } else if b.name.chars().count() > 500 {
        errors.push(FieldError::new("business.name", "business_name_too_long"));
    }
    if b.address.chars().count() > 1000 {
        errors.push(FieldError::new("business.address", "address_too_long"));
    }
    let inn = Inn::parse(&b.inn)
        .map_err(|e| errors.push(FieldError::new("business.inn", e.code())))
        .ok();
    let in_range = |v: f64, max: f64| v.is_finite() && (-max..=max).contains(&v);
    let mut site = None;
    match (b.lat, b.lon) {
        (Some(lat), Some(lon)) => {
            if !in_range(lat, 90.0) {
                errors.push(FieldError::new("business.lat", "lat_out_of_range"));
            }
            if !in_range(lon, 180.0) {
                errors.push(FieldError::new("business.lon", "lon_out_of_range"));
            }
            site = Coordinates::parse(lat, lon).ok();
        }
        (Some(_), None) => errors.push(FieldError::new("business.lon", "coordinate_missing")),
        (None, Some(_)) => errors.push(FieldError::new("business.lat", "coordinate_missing")),
        (None, None) => {}
    }
    if let Some(zone) = &new.time_zone {
        if checklist_sync::trust::tz::utc_offset_minutes(zone, now_micros()).is_none() {
            errors.push(FieldError::new("time_zone", "time_zone_unknown"));
        }
    }
    if !matches!(new.language.as_deref(), None | Some("ru" | "en")) {
        errors.push(FieldError::new("language", "language_unknown"));
    }
    check_external(
        new.erknm_number.as_deref(),
        new.external_id.as_deref(),
        &mut errors,
    );
    match inn {
        Some(inn) if errors.is_empty() => Ok((inn, site)),
        _ => Err(errors),
    }
}

/// The inspection a create request with this idempotency key made before, if any.
async fn created_before(db: &AnyPool, create_key: &str) -> ApiResult<Option<Inspection>> {
    let row = sqlx::query("SELECT id FROM inspections WHERE create_key = $1")
        .bind(create_key)
        .fetch_optional(db)
        .await?;
    match row {
        Some(r) => load(db, r.uuid(0)?).await,
        None => Ok(None),
    }
}

/// Creates an inspection (inspectors and admins). With an `Idempotency-Key` header, a repeat
/// of the same caller's request (a double click, a retry after a lost answer) answers 200
/// with the inspection the first one made instead of making another.
#[utoipa::path(post, path = "/api/inspections", tag = "inspections", request_body = NewInspection,
    params(("Idempotency-Key" = Option<String>, Header, description = "1–100 characters of [A-Za-z0-9._:-]; a repeat answers the first inspection")),
    responses((status = 201, body = Inspection), (status = 200, body = Inspection, description = "a repeat of an earlier request with the same Idempotency-Key"),
              (status = 400, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(new): ApiJson<NewInspection>,
) -> ApiResult<(StatusCode, Json<Inspection>)> {
    let me = caller.require(&[Role::Inspector, Role::Admin])?;
    // Keys are the caller's own: another user's key names nothing here.
    let create_key = idempotency_key(&headers)?.map(|k| format!("{}:{k}", me.id));
    if let Some(key) = &create_key {
        if let Some(insp) = created_before(&state.db, key).await? {
            return Ok((StatusCode::OK, Json(insp)));
        }
    }
    let (inn, site) = check_new(&new).map_err(ApiError::Fields)?;
    let title = new.title.trim();
    let b = &new.business;
    let inspector_id = match new.inspector_id {
        // A token's system account runs no inspection: it names the responsible inspector.
        _ if me.token.is_some() && new.inspector_id.is_none_or(|i| i == me.id) => {
            return Err(ApiError::Fields(vec![FieldError::new(
                "inspector_id",
                "inspector_required",
            )]))
        }
        Some(id) if id != me.id => {
            if me.role != Role::Admin {
                return Err(ApiError::Forbidden);
            }
            let row = sqlx::query(
                "SELECT role, control_body_id FROM users WHERE id = $1 AND disabled = 0",
            )
            .bind(id.to_string())
            .fetch_optional(&state.db)
            .await?;
            let found = match row {
                Some(r) => Some((r.col::<String>(0)?, r.col::<Option<String>>(1)?)),
                None => None,
            };
            // A token names only an inspector of its own control body.
            let in_body = |body: &Option<String>| {
                me.token.as_ref().is_none_or(|t| &t.control_body_id == body)
            };
            match found {
                Some((role, body))
                    if (role == "inspector" || role == "admin") && in_body(&body) =>
                {
                    id
                }
                _ => {
                    return Err(ApiError::Fields(vec![FieldError::new(
                        "inspector_id",
                        "inspector_not_found",
                    )]))
                }
            }
        }
        _ => me.id,
    };
    if let Some(t) = new.template_id {
        let exists = sqlx::query("SELECT 1 FROM templates WHERE id = $1")
            .bind(t.to_string())
            .fetch_optional(&state.db)
            .await?;
        if exists.is_none() {
            return Err(ApiError::Fields(vec![FieldError::new(
                "template_id",
                "template_not_found",
            )]));
        }
    }
    check_erknm_free(&state.db, new.erknm_number.as_deref(), Uuid::nil()).await?;
    let time_zone = site
        .and_then(|s| checklist_sync::trust::tz::zone_at(s.lat, s.lon))
        .map(str::to_string)
        .or_else(|| new.time_zone.clone())
        .unwrap_or_else(|| "UTC".into());
    let id = Uuid::new_v4();
    let now = now_micros();
    // The row and its webhook outbox row commit together.
    let mut tx = crate::db::begin(&state.db).await?;
    let inserted = sqlx::query(
        "INSERT INTO inspections (id, kind, mode, template_id, title, scheduled_at, inspector_id, \
         business_name, business_inn, business_address, site_lat, site_lon, status, created_at, updated_at, search_text, \
         time_zone, create_key, language, erknm_number, external_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'scheduled', $13, $13, $14, $15, $16, $17, $18, $19)",
    )
    .bind(id.to_string())
    .bind(new.kind.as_str())
    .bind(new.mode.as_str())
    .bind(new.template_id.map(|t| t.to_string()))
    .bind(title)
    .bind(micros(new.scheduled_at))
    .bind(inspector_id.to_string())
    .bind(b.name.trim())
    .bind(inn.as_str())
    .bind(b.address.trim())
    .bind(site.map(|s| s.lat))
    .bind(site.map(|s| s.lon))
    .bind(now)
    .bind(
        format!(
            "{} {} {} {}",
            title,
            b.name.trim(),
            inn.as_str(),
            b.address.trim()
        )
        .to_lowercase(),
    )
    .bind(&time_zone)
    .bind(&create_key)
    .bind(new.language.as_deref().unwrap_or("ru"))
    .bind(&new.erknm_number)
    .bind(&new.external_id)
    .execute(&mut *tx)
    .await;
    if let Err(e) = inserted {
        drop(tx);
        // Two requests with one key raced: the other one's row stands.
        let unique = e
            .as_database_error()
            .is_some_and(|d| d.is_unique_violation());
        if let (true, Some(key)) = (unique, &create_key) {
            if let Some(insp) = created_before(&state.db, key).await? {
                return Ok((StatusCode::OK, Json(insp)));
            }
        }
        // Two requests with one register number raced: the other one's row stands.
        if unique && new.erknm_number.is_some() {
            return Err(erknm_taken());
        }
        return Err(e.into());
    }
    crate::webhooks::scheduled_in(&mut tx, id, now).await?;
    tx.commit().await?;
    // The business's and the inspector's known contacts are owed the notice and reminders.
    // A failure here is logged, not answered: the inspection stands, and adding a contact
    // or rescheduling plans again.
    if let Err(e) = state.notify.plan_inspection(id, now).await {
        tracing::warn!(error = %e, inspection = %id, "notify: planning failed");
    }
    let insp = load(&state.db, id)
        .await?
        .ok_or(ApiError::NotFound("inspection"))?;
    Ok((StatusCode::CREATED, Json(insp)))
}

/// Sets (replaces) an inspection's external ids (who manages it: its inspector, an admin, a
/// token with `inspections:write`), in any status: the register number often comes later.
#[utoipa::path(put, path = "/api/inspections/{id}/external-ids", tag = "inspections",
    params(("id" = Uuid, Path)), request_body = ExternalIds,
    responses((status = 200, body = Inspection), (status = 400, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)))]
pub async fn set_external_ids(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    ApiJson(ids): ApiJson<ExternalIds>,
) -> ApiResult<Json<Inspection>> {
    load_for(&state.db, &caller, id, Access::Manage).await?;
    let mut errors = Vec::new();
    check_external(
        ids.erknm_number.as_deref(),
        ids.external_id.as_deref(),
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(ApiError::Fields(errors));
    }
    check_erknm_free(&state.db, ids.erknm_number.as_deref(), id).await?;
    let updated = sqlx::query(
        "UPDATE inspections SET erknm_number = $1, external_id = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(&ids.erknm_number)
    .bind(&ids.external_id)
    .bind(now_micros())
    .bind(id.to_string())
    .execute(&state.db)
    .await;
    if let Err(e) = updated {
        if e.as_database_error()
            .is_some_and(|d| d.is_unique_violation())
        {
            return Err(erknm_taken());
        }
        return Err(e.into());
    }
    Ok(Json(
        load(&state.db, id)
            .await?
            .ok_or(ApiError::NotFound("inspection"))?,
    ))
}

/// One inspection with its checklist items.
#[utoipa::path(get, path = "/api/inspections/{id}", tag = "inspections", params(("id" = Uuid, Path)),
    responses((status = 200, body = Inspection), (status = 404, body = crate::error::ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Inspection>> {
    Ok(Json(
        load_for(&state.db, &caller, id, Access::Read).await?.0,
    ))
}

/// Changes the lifecycle status (409 `illegal_transition` when the lifecycle forbids it).
#[utoipa::path(post, path = "/api/inspections/{id}/transition", tag = "inspections", params(("id" = Uuid, Path)),
    request_body = TransitionRequest,
    responses((status = 200, body = Inspection), (status = 409, body = crate::error::ErrorBody)))]
pub async fn change_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<TransitionRequest>,
) -> ApiResult<Json<Inspection>> {
    let (insp, _) = load_for(&state.db, &caller, id, Access::Manage).await?;
    let to = crate::live::lifecycle::TransitionTo {
        to: req.to,
        reason: req.reason,
        note: req.note,
    };
    state.lifecycle.apply(&insp, &to, &caller).await?;
    Ok(Json(
        load(&state.db, id)
            .await?
            .ok_or(ApiError::NotFound("inspection"))?,
    ))
}

/// An invitation as listed (never with its token).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Invitation {
    /// Id.
    pub id: Uuid,
    /// Label (who it is for).
    pub label: String,
    /// Creation time.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Expiry.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// Revocation time.
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Create-invitation request.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInvitation {
    /// Who it is for.
    pub label: Option<String>,
    /// Lifetime in hours (1–720; default from configuration).
    pub ttl_hours: Option<u32>,
}

/// A new invitation: the token is shown once, here, and never stored in clear.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedInvitation {
    /// The invitation.
    pub invitation: Invitation,
    /// The secret token.
    pub token: String,
    /// The link to send to the business.
    pub url: String,
    /// The link as a QR code (SVG).
    pub qr_svg: String,
}

/// Invites the business (manager of the inspection).
#[utoipa::path(post, path = "/api/inspections/{id}/invitations", tag = "invitations", params(("id" = Uuid, Path)),
    request_body = NewInvitation, responses((status = 201, body = CreatedInvitation)))]
pub async fn invite(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<NewInvitation>,
) -> ApiResult<(StatusCode, Json<CreatedInvitation>)> {
    let (insp, _) = load_for(&state.db, &caller, id, Access::Manage).await?;
    if matches!(
        insp.status,
        Status::Finished | Status::Signed | Status::Cancelled
    ) {
        return Err(ApiError::Conflict {
            code: "inspection_closed",
            message: "the inspection is over".into(),
        });
    }
    let ttl = req.ttl_hours.unwrap_or(state.config.invitation_ttl_hours);
    if !(1..=720).contains(&ttl) {
        return Err(ApiError::validation("ttl_hours must be between 1 and 720"));
    }
    let label = req
        .label
        .unwrap_or_default()
        .trim()
        .chars()
        .take(200)
        .collect::<String>();
    let label = if label.is_empty() {
        insp.business.name.clone()
    } else {
        label
    };
    let now = now_micros();
    let expires = now + i64::from(ttl) * 3_600_000_000;
    let (inv_id, url, token) = issue_invitation(
        &state.db,
        &state.config,
        &insp,
        &label,
        caller.staff()?.id,
        now,
        expires,
    )
    .await?;
    let qr_svg = qrcode::QrCode::new(url.as_bytes())
        .map(|code| {
            code.render::<qrcode::render::svg::Color>()
                .min_dimensions(200, 200)
                .build()
        })
        .map_err(|e| anyhow::anyhow!("QR code: {e}"))?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedInvitation {
            invitation: Invitation {
                id: inv_id,
                label,
                created_at: from_micros(now),
                expires_at: from_micros(expires),
                revoked_at: None,
            },
            token,
            url,
            qr_svg,
        }),
    ))
}

/// Stores a new invitation to `insp` (its token hashed) and returns its id, its link and the
/// token. Used by [`invite`] and by the notices, which send the link themselves.
pub(crate) async fn issue_invitation(
    db: &AnyPool,
    config: &crate::Config,
    insp: &Inspection,
    label: &str,
    created_by: Uuid,
    now: i64,
    expires: i64,
) -> ApiResult<(Uuid, String, String)> {
    let token = auth::new_token();
    let inv_id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO invitations (id, inspection_id, token_hash, label, created_by, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(inv_id.to_string())
    .bind(insp.id.to_string())
    .bind(auth::hash_token(&token))
    .bind(label)
    .bind(created_by.to_string())
    .bind(now)
    .bind(expires)
    .execute(db)
    .await?;
    let url = format!("{}/b/#t={token}", config.public_url);
    Ok((inv_id, url, token))
}

/// Lists invitations of an inspection (manager).
#[utoipa::path(get, path = "/api/inspections/{id}/invitations", tag = "invitations", params(("id" = Uuid, Path)),
    responses((status = 200, body = InvitationList)))]
pub async fn list_invitations(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<InvitationList>> {
    load_for(&state.db, &caller, id, Access::Manage).await?;
    let rows = sqlx::query(
        "SELECT id, label, created_at, expires_at, revoked_at FROM invitations WHERE inspection_id = $1 ORDER BY created_at",
    )
    .bind(id.to_string())
    .fetch_all(&state.db)
    .await?;
    let invitations = rows
        .into_iter()
        .map(|r| {
            Ok(Invitation {
                id: r.uuid(0)?,
                label: r.col(1)?,
                created_at: r.time(2)?,
                expires_at: r.time(3)?,
                revoked_at: r.opt_time(4)?,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(InvitationList { invitations }))
}

/// The invitations of an inspection.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InvitationList {
    /// Oldest first, revoked ones included.
    pub invitations: Vec<Invitation>,
}

/// Revokes an invitation (manager); its guests lose access at once.
#[utoipa::path(post, path = "/api/inspections/{id}/invitations/{inv}/revoke", tag = "invitations",
    params(("id" = Uuid, Path), ("inv" = Uuid, Path)), responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, inv)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    load_for(&state.db, &caller, id, Access::Manage).await?;
    let mut tx = crate::db::begin(&state.db).await?;
    let done = sqlx::query(
        "UPDATE invitations SET revoked_at = $1 WHERE id = $2 AND inspection_id = $3 AND revoked_at IS NULL",
    )
    .bind(now_micros())
    .bind(inv.to_string())
    .bind(id.to_string())
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::NotFound("invitation"));
    }
    // The other nodes close their sockets of it too (`signals`).
    state
        .bus
        .publish(&mut tx, &crate::signals::Signal::InvitationRevoked(inv))
        .await?;
    tx.commit().await?;
    state.access.end_invitation(inv);
    Ok(StatusCode::NO_CONTENT)
}

/// A participant of an inspection.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Participant {
    /// Id.
    pub id: Uuid,
    /// inspector, business, reviewer or admin.
    pub role: String,
    /// Shown name.
    pub display_name: String,
    /// Device description.
    pub device: String,
    /// First connection.
    pub joined_at: chrono::DateTime<chrono::Utc>,
    /// Last connection.
    pub last_seen_at: chrono::DateTime<chrono::Utc>,
}

/// Lists participants (anyone who may read the inspection).
#[utoipa::path(get, path = "/api/inspections/{id}/participants", tag = "inspections", params(("id" = Uuid, Path)),
    responses((status = 200, body = ParticipantList)))]
pub async fn participants(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ParticipantList>> {
    load_for(&state.db, &caller, id, Access::Read).await?;
    let rows = sqlx::query(
        "SELECT id, role, display_name, device, joined_at, last_seen_at FROM participants \
         WHERE inspection_id = $1 ORDER BY joined_at",
    )
    .bind(id.to_string())
    .fetch_all(&state.db)
    .await?;
    let participants = rows
        .into_iter()
        .map(|r| {
            Ok(Participant {
                id: r.uuid(0)?,
                role: r.col(1)?,
                display_name: r.col(2)?,
                device: r.col(3)?,
                joined_at: r.time(4)?,
                last_seen_at: r.time(5)?,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(ParticipantList { participants }))
}

/// The participants of an inspection.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ParticipantList {
    /// By first connection.
    pub participants: Vec<Participant>,
}

/// Accept-invitation request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    /// The token from the link.
    pub token: String,
}

/// An accepted invitation: the inspection, and the CSRF token of the guest's writes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    /// The inspection the invitation is for, with its checklist.
    pub inspection: Inspection,
    /// Echo in `X-CSRF-Token` on writes.
    pub csrf_token: String,
    /// The business's durable link to its results (act, recording, signing), which outlives
    /// the invitation: `<public_url>/b/#r=<token>`.
    pub results_url: String,
    /// Whether the invitation opened the live room (a guest session). `false` after the end:
    /// only the results access was given.
    pub live: bool,
}

/// The business opens its link: the invitation token opens a guest session, whose own token
/// becomes an HttpOnly guest cookie that expires with the invitation, and a durable results
/// access. After the inspection's end only the results access is given (`live: false`).
#[utoipa::path(post, path = "/api/invitations/accept", tag = "invitations", request_body = AcceptRequest,
    responses((status = 200, body = Accepted), (status = 404, body = crate::error::ErrorBody), (status = 410, body = crate::error::ErrorBody)))]
pub async fn accept(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<AcceptRequest>,
) -> ApiResult<Response> {
    if req.token.len() > 128 {
        return Err(ApiError::NotFound("invitation"));
    }
    let (invitation, live) = match auth::invitation_by_token(&state.db, &req.token).await {
        Ok(inv) => (inv, true),
        // After the end the link leads to the results: no guest session, no live room.
        Err(ApiError::Gone {
            code: "inspection_over",
            ..
        }) => (
            auth::over_invitation_by_token(&state.db, &req.token).await?,
            false,
        ),
        Err(e) => return Err(e),
    };
    let insp = load(&state.db, invitation.inspection_id)
        .await?
        .ok_or(ApiError::NotFound("inspection"))?;
    // The durable results access: the business keeps it after the invitation expires.
    let results = crate::results::issue(&state, invitation.inspection_id, invitation.id).await?;
    let csrf = auth::guest_csrf(&results.token);
    let mut cookies = vec![crate::results::cookie(&state, &results.token)];
    if live {
        let token = auth::start_guest_session(&state.db, &invitation, &csrf).await?;
        // The cookie ends no later than the invitation (whole seconds, rounded down).
        let max_age = ((invitation.expires_at - now_micros()) / 1_000_000).max(1);
        cookies.push(auth::set_cookie(
            GUEST_COOKIE,
            &token,
            max_age,
            state.config.secure_cookies(),
        ));
    }
    let body = Accepted {
        inspection: insp,
        csrf_token: csrf,
        results_url: results.url,
        live,
    };
    let mut headers = axum::http::HeaderMap::new();
    for c in cookies {
        if let Ok(v) = axum::http::HeaderValue::from_str(&c) {
            headers.append(header::SET_COOKIE, v);
        }
    }
    Ok((headers, Json(body)).into_response())
}
