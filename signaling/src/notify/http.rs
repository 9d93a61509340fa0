//! The notices' HTTP API: contacts (with consent), reschedule, delivery status, templates.
//! Every inspection route goes through the one access rule (`inspections::load_for`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::core::Purpose;
use super::email::EmailAddress;
use super::texts;
use crate::auth::{Caller, Role};
use crate::db::{micros, now_micros, RowExt};
use crate::domain::Status;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::ApiJson;
use crate::inspections::{load, load_for, Access, Inspection};
use crate::AppState;

/// Active contacts one participant may have at most.
const MAX_CONTACTS: i64 = 10;
/// Scheduled inspections re-planned when a contact is added, at most.
const MAX_REPLAN: i64 = 200;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/inspections/{id}/contacts",
            get(list_contacts).post(add_business_contact),
        )
        .route(
            "/api/inspections/{id}/contacts/{contact}/remove",
            post(remove_contact),
        )
        .route("/api/inspections/{id}/deliveries", get(deliveries))
        .route(
            "/api/inspections/{id}/deliveries/{delivery}/retry",
            post(retry_delivery),
        )
        .route("/api/inspections/{id}/reschedule", post(reschedule))
        .route("/api/me/contacts", post(add_own_contact))
        .route("/api/me/push-subscriptions", post(add_own_subscription))
        .route(
            "/api/inspections/{id}/push-subscriptions",
            post(add_business_subscription),
        )
        .route("/api/push/key", get(push_key))
        .route(
            "/api/message-templates",
            get(list_templates).post(change_template),
        )
}

/// How the contact's owner agreed to be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConsentSource {
    /// The business gave the address for notices (told the inspector, in writing or orally).
    Business,
    /// The address the business published in the state register for official notices.
    Register,
    /// The staff member entered their own address.
    Own,
}

impl ConsentSource {
    fn as_str(self) -> &'static str {
        match self {
            ConsentSource::Business => "business",
            ConsentSource::Register => "register",
            ConsentSource::Own => "own",
        }
    }
}

/// Add-contact request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewContact {
    /// E-mail address.
    pub email: String,
    /// How consent was given (`business` or `register` for a business's contact; ignored
    /// for one's own).
    pub consent: Option<ConsentSource>,
}

/// A contact.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Contact {
    /// Id.
    pub id: Uuid,
    /// `business` (by INN) or `user`.
    pub owner: String,
    /// `email` (or `push`).
    pub channel: String,
    /// The address.
    pub address: String,
    /// When consent was recorded.
    pub consent_at: chrono::DateTime<chrono::Utc>,
    /// How.
    pub consent_source: String,
    /// When it was removed (withdrawn, or gone at the other end).
    pub removed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Why (`withdrawn`, `push_gone`).
    pub removed_reason: Option<String>,
}

/// The contacts of an inspection's participants.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ContactList {
    /// The business's (by INN) and the inspector's, removed ones included.
    pub contacts: Vec<Contact>,
}

fn email_of(req: &NewContact) -> ApiResult<String> {
    EmailAddress::parse(&req.email)
        .map(|e| e.as_str().to_string())
        .ok_or_else(|| ApiError::Fields(vec![FieldError::new("email", "invalid_email")]))
}

async fn add_contact(
    state: &AppState,
    owner: (&str, &str),
    (channel, address): (&str, &str),
    consent: ConsentSource,
    added_by: Option<Uuid>,
) -> ApiResult<(StatusCode, Contact)> {
    let now = now_micros();
    let existing = sqlx::query(
        "SELECT id FROM contacts WHERE owner_kind = $1 AND owner_id = $2 AND channel = $3 \
         AND address = $4 AND removed_at IS NULL",
    )
    .bind(owner.0)
    .bind(owner.1)
    .bind(channel)
    .bind(address)
    .fetch_optional(&state.db)
    .await?;
    if let Some(r) = existing {
        return Ok((StatusCode::OK, contact(state, &r.col::<String>(0)?).await?));
    }
    let count: i64 = sqlx::query(
        "SELECT COUNT(*) FROM contacts WHERE owner_kind = $1 AND owner_id = $2 AND removed_at IS NULL",
    )
    .bind(owner.0)
    .bind(owner.1)
    .fetch_one(&state.db)
    .await?
    .col(0)?;
    if count >= MAX_CONTACTS {
        return Err(ApiError::Conflict {
            code: "too_many_contacts",
            message: format!("at most {MAX_CONTACTS} contacts"),
        });
    }
    let id = Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO contacts (id, owner_kind, owner_id, channel, address, consent_at, \
         consent_source, added_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $6)",
    )
    .bind(&id)
    .bind(owner.0)
    .bind(owner.1)
    .bind(channel)
    .bind(address)
    .bind(now)
    .bind(consent.as_str())
    .bind(added_by.map(|u| u.to_string()))
    .execute(&state.db)
    .await?;
    // The new contact is owed what the owner's scheduled inspections planned for the others.
    let column = if owner.0 == "business" {
        "business_inn"
    } else {
        "inspector_id"
    };
    let ids = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM inspections WHERE status = 'scheduled' AND {column} = $1 \
         ORDER BY scheduled_at LIMIT {MAX_REPLAN}"
    )))
    .bind(owner.1)
    .fetch_all(&state.db)
    .await?;
    for r in ids {
        state.notify.plan_inspection(r.uuid(0)?, now).await?;
    }
    Ok((StatusCode::CREATED, contact(state, &id).await?))
}

async fn contact(state: &AppState, id: &str) -> ApiResult<Contact> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{CONTACT_SELECT} WHERE id = $1"
    )))
    .bind(id)
    .fetch_one(&state.db)
    .await?;
    contact_row(&r)
}

const CONTACT_SELECT: &str = "SELECT id, owner_kind, channel, address, consent_at, \
    consent_source, removed_at, removed_reason FROM contacts";

fn contact_row(r: &sqlx::any::AnyRow) -> ApiResult<Contact> {
    Ok(Contact {
        id: r.uuid(0)?,
        owner: r.col(1)?,
        channel: r.col(2)?,
        address: r.col(3)?,
        consent_at: r.time(4)?,
        consent_source: r.col(5)?,
        removed_at: r.opt_time(6)?,
        removed_reason: r.col(7)?,
    })
}

/// Adds an e-mail contact of the inspected business (by INN), with how consent was given.
/// The business's scheduled inspections owe it their notice and reminders from now on.
#[utoipa::path(post, path = "/api/inspections/{id}/contacts", tag = "notices", params(("id" = Uuid, Path)),
    request_body = NewContact,
    responses((status = 201, body = Contact), (status = 200, body = Contact), (status = 400, body = crate::error::ErrorBody)))]
pub async fn add_business_contact(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<NewContact>,
) -> ApiResult<(StatusCode, Json<Contact>)> {
    let (insp, _) = load_for(&state.db, &caller, id, Access::Manage).await?;
    let consent = match req.consent {
        Some(c @ (ConsentSource::Business | ConsentSource::Register)) => c,
        _ => {
            return Err(ApiError::Fields(vec![FieldError::new(
                "consent",
                "consent_required",
            )]))
        }
    };
    let me = caller.staff()?.id;
    let email = email_of(&req)?;
    let (status, c) = add_contact(
        &state,
        ("business", insp.business.inn.as_str()),
        ("email", &email),
        consent,
        Some(me),
    )
    .await?;
    Ok((status, Json(c)))
}

/// Adds the caller's own e-mail address (staff): reminders of its inspections go there.
#[utoipa::path(post, path = "/api/me/contacts", tag = "notices", request_body = NewContact,
    responses((status = 201, body = Contact), (status = 400, body = crate::error::ErrorBody)))]
pub async fn add_own_contact(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<NewContact>,
) -> ApiResult<(StatusCode, Json<Contact>)> {
    let me = caller.staff()?.id;
    let email = email_of(&req)?;
    let (status, c) = add_contact(
        &state,
        ("user", &me.to_string()),
        ("email", &email),
        ConsentSource::Own,
        Some(me),
    )
    .await?;
    Ok((status, Json(c)))
}

/// A browser's push subscription, as `PushSubscription.toJSON()` gives it.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    /// `{"endpoint": "https://…", "keys": {"p256dh": "…", "auth": "…"}}`.
    #[schema(value_type = Object)]
    pub subscription: serde_json::Value,
}

/// The server's VAPID public key.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PushKey {
    /// The `applicationServerKey` for `pushManager.subscribe` (base64url).
    pub public_key: String,
}

/// The VAPID public key (public: it is in every browser's subscription anyway).
#[utoipa::path(get, path = "/api/push/key", tag = "notices", responses((status = 200, body = PushKey)))]
pub async fn push_key(State(state): State<AppState>) -> Json<PushKey> {
    Json(PushKey {
        public_key: state.notify.push_public_key(),
    })
}

fn subscription_of(state: &AppState, req: &NewSubscription) -> ApiResult<String> {
    super::push::Subscription::parse(&req.subscription, &state.config.notify)
        .map(|s| s.stored())
        .map_err(|code| ApiError::Fields(vec![FieldError::new("subscription", code)]))
}

/// Subscribes the caller's browser to pushes (staff): reminders of its inspections.
#[utoipa::path(post, path = "/api/me/push-subscriptions", tag = "notices", request_body = NewSubscription,
    responses((status = 201, body = Contact), (status = 400, body = crate::error::ErrorBody)))]
pub async fn add_own_subscription(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<NewSubscription>,
) -> ApiResult<(StatusCode, Json<Contact>)> {
    let me = caller.staff()?.id;
    let address = subscription_of(&state, &req)?;
    let (status, c) = add_contact(
        &state,
        ("user", &me.to_string()),
        ("push", &address),
        ConsentSource::Own,
        Some(me),
    )
    .await?;
    Ok((status, Json(c)))
}

/// Subscribes the business's phone to pushes, from its page (the invitation's guest or the
/// organisation's representative): the notice's updates and the reminders. The browser's
/// permission prompt is the consent (`own`).
#[utoipa::path(post, path = "/api/inspections/{id}/push-subscriptions", tag = "notices", params(("id" = Uuid, Path)),
    request_body = NewSubscription,
    responses((status = 201, body = Contact), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn add_business_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<NewSubscription>,
) -> ApiResult<(StatusCode, Json<Contact>)> {
    let (insp, _) = load_for(&state.db, &caller, id, Access::Read).await?;
    if matches!(caller, Caller::Staff(_)) {
        return Err(ApiError::Forbidden);
    }
    let address = subscription_of(&state, &req)?;
    let (status, c) = add_contact(
        &state,
        ("business", insp.business.inn.as_str()),
        ("push", &address),
        ConsentSource::Own,
        None,
    )
    .await?;
    Ok((status, Json(c)))
}

/// The contacts of the inspection's business and inspector (manager).
#[utoipa::path(get, path = "/api/inspections/{id}/contacts", tag = "notices", params(("id" = Uuid, Path)),
    responses((status = 200, body = ContactList)))]
pub async fn list_contacts(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ContactList>> {
    let (insp, _) = load_for(&state.db, &caller, id, Access::Manage).await?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{CONTACT_SELECT} WHERE (owner_kind = 'business' AND owner_id = $1) \
         OR (owner_kind = 'user' AND owner_id = $2) ORDER BY created_at LIMIT 100"
    )))
    .bind(insp.business.inn.as_str())
    .bind(insp.inspector.id.to_string())
    .fetch_all(&state.db)
    .await?;
    Ok(Json(ContactList {
        contacts: rows.iter().map(contact_row).collect::<ApiResult<_>>()?,
    }))
}

/// Removes a contact of the inspection's business or inspector (consent withdrawn): pending
/// messages to it are dropped when due.
#[utoipa::path(post, path = "/api/inspections/{id}/contacts/{contact}/remove", tag = "notices",
    params(("id" = Uuid, Path), ("contact" = Uuid, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn remove_contact(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, contact)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    let (insp, _) = load_for(&state.db, &caller, id, Access::Manage).await?;
    let done = sqlx::query(
        "UPDATE contacts SET removed_at = $1, removed_reason = 'withdrawn' WHERE id = $2 \
         AND removed_at IS NULL AND ((owner_kind = 'business' AND owner_id = $3) \
         OR (owner_kind = 'user' AND owner_id = $4))",
    )
    .bind(now_micros())
    .bind(contact.to_string())
    .bind(insp.business.inn.as_str())
    .bind(insp.inspector.id.to_string())
    .execute(&state.db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::NotFound("contact"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// One message of the inspection as the scheduler sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    /// Id.
    pub id: Uuid,
    /// `notice`, `cancel` or `reminder`.
    pub purpose: String,
    /// Seconds before the start (reminders).
    pub offset_secs: i64,
    /// The schedule's revision it belongs to.
    pub seq: i64,
    /// `email` or `push`.
    pub channel: String,
    /// The recipient's address.
    pub address: String,
    /// `business` or `user`.
    pub owner: String,
    /// When it is (or was) due.
    pub due_at: chrono::DateTime<chrono::Utc>,
    /// `pending`, `sending`, `sent`, `failed`, `unknown` or `dropped`.
    pub state: String,
    /// Attempts made.
    pub attempts: i32,
    /// The last failure's code (`smtp_unreachable`, `invalid_address`, …) or why it was
    /// dropped (`superseded`, `cancelled`, `started`, …).
    pub last_error: Option<String>,
    /// When it was sent.
    pub sent_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The messages of an inspection.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryList {
    /// By due time.
    pub deliveries: Vec<Delivery>,
}

/// The delivery status of the inspection's notices and reminders (manager).
#[utoipa::path(get, path = "/api/inspections/{id}/deliveries", tag = "notices", params(("id" = Uuid, Path)),
    responses((status = 200, body = DeliveryList)))]
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<DeliveryList>> {
    load_for(&state.db, &caller, id, Access::Manage).await?;
    let rows = sqlx::query(
        "SELECT d.id, d.purpose, d.offset_secs, d.seq, c.channel, c.address, c.owner_kind, \
         d.due_at, d.state, d.attempts, d.last_error, d.sent_at FROM deliveries d \
         JOIN contacts c ON c.id = d.contact_id WHERE d.inspection_id = $1 \
         ORDER BY d.due_at, d.purpose LIMIT 1000",
    )
    .bind(id.to_string())
    .fetch_all(&state.db)
    .await?;
    let deliveries = rows
        .iter()
        .map(|r| {
            Ok(Delivery {
                id: r.uuid(0)?,
                purpose: r.col(1)?,
                offset_secs: r.col(2)?,
                seq: r.col(3)?,
                channel: r.col(4)?,
                address: r.col(5)?,
                owner: r.col(6)?,
                due_at: r.time(7)?,
                state: r.col(8)?,
                attempts: r.col(9)?,
                last_error: r.col(10)?,
                sent_at: r.opt_time(11)?,
            })
        })
        .collect::<ApiResult<_>>()?;
    Ok(Json(DeliveryList { deliveries }))
}

/// Sends a failed message again, or one whose outcome is unknown (its node stopped while
/// sending: the person may have it already, so only a person decides to resend), at once
/// (manager). 409 `not_retryable` for any other state.
#[utoipa::path(post, path = "/api/inspections/{id}/deliveries/{delivery}/retry", tag = "notices",
    params(("id" = Uuid, Path), ("delivery" = Uuid, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn retry_delivery(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, delivery)): Path<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    load_for(&state.db, &caller, id, Access::Manage).await?;
    let now = now_micros();
    let done = sqlx::query(
        "UPDATE deliveries SET state = 'pending', due_at = $1, attempts = 0, updated_at = $1, \
         claimed_by = NULL, claimed_until = NULL WHERE id = $2 AND inspection_id = $3 \
         AND state IN ('failed', 'unknown')",
    )
    .bind(now)
    .bind(delivery.to_string())
    .bind(id.to_string())
    .execute(&state.db)
    .await?;
    if done.rows_affected() == 1 {
        return Ok(StatusCode::NO_CONTENT);
    }
    let exists = sqlx::query("SELECT 1 FROM deliveries WHERE id = $1 AND inspection_id = $2")
        .bind(delivery.to_string())
        .bind(id.to_string())
        .fetch_optional(&state.db)
        .await?;
    match exists {
        Some(_) => Err(ApiError::Conflict {
            code: "not_retryable",
            message: "only a failed or unknown message can be sent again".into(),
        }),
        None => Err(ApiError::NotFound("delivery")),
    }
}

/// Reschedule request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleRequest {
    /// The new planned start (RFC 3339), in the future.
    pub scheduled_at: chrono::DateTime<chrono::Utc>,
}

/// Moves a scheduled inspection's start (manager). The business gets an updated notice (same
/// calendar UID, higher SEQUENCE); pending reminders of the old time are dropped and new ones
/// planned, in one transaction with the change.
#[utoipa::path(post, path = "/api/inspections/{id}/reschedule", tag = "notices", params(("id" = Uuid, Path)),
    request_body = RescheduleRequest,
    responses((status = 200, body = Inspection), (status = 409, body = crate::error::ErrorBody)))]
pub async fn reschedule(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<RescheduleRequest>,
) -> ApiResult<Json<Inspection>> {
    let (insp, _) = load_for(&state.db, &caller, id, Access::Manage).await?;
    let now = now_micros();
    if micros(req.scheduled_at) <= now {
        return Err(ApiError::Fields(vec![FieldError::new(
            "scheduled_at",
            "in_the_past",
        )]));
    }
    if insp.status != Status::Scheduled {
        return Err(ApiError::Conflict {
            code: "illegal_transition",
            message: "only a scheduled inspection can be rescheduled".into(),
        });
    }
    if insp.scheduled_at == req.scheduled_at {
        return Ok(Json(insp));
    }
    let mut tx = crate::db::begin(&state.db).await?;
    let moved = sqlx::query(
        "UPDATE inspections SET scheduled_at = $1, notice_seq = notice_seq + 1, updated_at = $2 \
         WHERE id = $3 AND status = 'scheduled'",
    )
    .bind(micros(req.scheduled_at))
    .bind(now)
    .bind(id.to_string())
    .execute(&mut *tx)
    .await?;
    if moved.rows_affected() == 0 {
        return Err(ApiError::Conflict {
            code: "illegal_transition",
            message: "only a scheduled inspection can be rescheduled".into(),
        });
    }
    sqlx::query(
        "UPDATE deliveries SET state = 'dropped', last_error = 'superseded', updated_at = $1 \
         WHERE inspection_id = $2 AND state = 'pending' AND purpose <> 'cancel'",
    )
    .bind(now)
    .bind(id.to_string())
    .execute(&mut *tx)
    .await?;
    super::plan_in(&mut tx, &state.config, id, now).await?;
    crate::webhooks::scheduled_in(&mut tx, id, now).await?;
    tx.commit().await?;
    Ok(Json(
        load(&state.db, id)
            .await?
            .ok_or(ApiError::NotFound("inspection"))?,
    ))
}

/// A message template in force.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageTemplate {
    /// `notice`, `cancel` or `reminder`.
    pub purpose: String,
    /// `ru` or `en`.
    pub language: String,
    /// 0 for the built-in text, else the stored version.
    pub version: i64,
    /// Subject with placeholders.
    pub subject: String,
    /// Body with placeholders.
    pub body: String,
}

/// The templates in force.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageTemplateList {
    /// One per purpose and language.
    pub templates: Vec<MessageTemplate>,
    /// The placeholders they may use, as `{name}`.
    pub placeholders: Vec<String>,
}

/// A template change (admin): a new version of one purpose and language.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageTemplateChange {
    /// `notice`, `cancel` or `reminder`.
    pub purpose: String,
    /// `ru` or `en`.
    pub language: String,
    /// Subject, 1–300 characters.
    pub subject: String,
    /// Body, 1–20000 characters.
    pub body: String,
}

fn admin(caller: &Caller) -> ApiResult<crate::auth::Staff> {
    let s = caller.staff()?;
    if s.role != Role::Admin {
        return Err(ApiError::Forbidden);
    }
    Ok(s.clone())
}

/// The message templates in force (admin).
#[utoipa::path(get, path = "/api/message-templates", tag = "notices",
    responses((status = 200, body = MessageTemplateList)))]
pub async fn list_templates(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<MessageTemplateList>> {
    admin(&caller)?;
    let mut templates = Vec::new();
    for p in [Purpose::Notice, Purpose::Cancel, Purpose::Reminder] {
        for l in ["ru", "en"] {
            let version: Option<i64> = sqlx::query(
                "SELECT MAX(version) FROM message_templates WHERE purpose = $1 AND language = $2",
            )
            .bind(p.as_str())
            .bind(l)
            .fetch_one(&state.db)
            .await?
            .col(0)?;
            let t = texts::current(&state.db, p, l).await?;
            templates.push(MessageTemplate {
                purpose: p.as_str().into(),
                language: l.into(),
                version: version.unwrap_or(0),
                subject: t.subject,
                body: t.body,
            });
        }
    }
    Ok(Json(MessageTemplateList {
        templates,
        placeholders: texts::PLACEHOLDERS
            .iter()
            .map(|p| format!("{{{p}}}"))
            .collect(),
    }))
}

/// Stores a new version of a message template (admin); earlier versions stay (the audit).
#[utoipa::path(post, path = "/api/message-templates", tag = "notices", request_body = MessageTemplateChange,
    responses((status = 201, body = MessageTemplate), (status = 400, body = crate::error::ErrorBody)))]
pub async fn change_template(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<MessageTemplateChange>,
) -> ApiResult<(StatusCode, Json<MessageTemplate>)> {
    let me = admin(&caller)?;
    let mut fields = Vec::new();
    let purpose = Purpose::parse(&req.purpose);
    if purpose.is_none() {
        fields.push(FieldError::new("purpose", "unknown_purpose"));
    }
    if !matches!(req.language.as_str(), "ru" | "en") {
        fields.push(FieldError::new("language", "unknown_language"));
    }
    let subject_len = req.subject.trim().chars().count();
    if subject_len == 0 || subject_len > 300 || req.subject.contains(['\r', '\n']) {
        fields.push(FieldError::new("subject", "invalid_length"));
    }
    let body_len = req.body.trim().chars().count();
    if body_len == 0 || body_len > 20_000 {
        fields.push(FieldError::new("body", "invalid_length"));
    }
    let Some(purpose) = purpose.filter(|_| fields.is_empty()) else {
        return Err(ApiError::Fields(fields));
    };
    let mut tx = crate::db::begin(&state.db).await?;
    let version: i64 = sqlx::query(
        "SELECT COALESCE(MAX(version), 0) + 1 FROM message_templates \
         WHERE purpose = $1 AND language = $2",
    )
    .bind(purpose.as_str())
    .bind(&req.language)
    .fetch_one(&mut *tx)
    .await?
    .col(0)?;
    sqlx::query(
        "INSERT INTO message_templates (purpose, language, version, subject, body, created_by, \
         created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(purpose.as_str())
    .bind(&req.language)
    .bind(version)
    .bind(req.subject.trim())
    .bind(&req.body)
    .bind(me.id.to_string())
    .bind(now_micros())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(MessageTemplate {
            purpose: purpose.as_str().into(),
            language: req.language,
            version,
            subject: req.subject.trim().into(),
            body: req.body,
        }),
    ))
}
