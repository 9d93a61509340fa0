//! The act's HTTP surface: form (inspector), read and download (anyone who may see the
//! inspection), sign and refuse (the official and the business), the evidence bundle.
//! Every route goes through `inspections::load_for`.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use checklist_sync::{ActState, OpError, Operation, SignerRole};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::model::{image_path, is_picture, Act, ActInputs};
use super::render::ActImage;
use super::sha256_hex;
use crate::auth::Caller;
use crate::db::RowExt;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::inspections::{load_for, Access, Inspection};
use crate::live::{participants, principal, Live};
use crate::names::{self, FileKind};
use crate::signing::http::{decode_b64, own_certificate};
use crate::signing::{ca, CmsError};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/inspections/{id}/act", get(show).post(form))
        .route("/api/inspections/{id}/act.pdf", get(pdf))
        .route(
            "/api/inspections/{id}/act/signatures/{file}",
            get(signature_file),
        )
        .route("/api/inspections/{id}/act/signature/begin", post(begin))
        .route("/api/inspections/{id}/act/signature", post(sign))
        .route("/api/inspections/{id}/act/refusal", post(refuse))
        .route("/api/inspections/{id}/bundle.zip", get(bundle))
}

/// The act as the log shows it (the fold's `act`, checklist_sync::ActState, in its wire
/// shape): what was formed and who answered.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActDoc {
    /// Seq of `act_formed`.
    pub seq: u64,
    /// Its server time, µs since the epoch.
    pub ts: i64,
    /// SHA-256 of the PDF.
    pub sha256: String,
    /// Size of the PDF, bytes.
    pub size: u64,
    /// The last event the act was formed from (printed in it).
    pub head_seq: u64,
    /// That event's hash.
    pub head_hash: String,
    /// `ru` or `en`.
    pub language: String,
    /// The signatures, in log order.
    pub signatures: Vec<SignatureDoc>,
    /// The refusals, in log order.
    pub refusals: Vec<RefusalDoc>,
}

/// One recorded signature.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignatureDoc {
    /// Seq of `act_signed`.
    pub seq: u64,
    /// Its server time, µs.
    pub ts: i64,
    /// `official` or `business`.
    pub role: String,
    /// The name in the certificate.
    pub signer: String,
    /// SHA-256 of the certificate (DER).
    pub certificate_sha256: String,
    /// SHA-256 of the detached CMS signature (DER).
    pub signature_sha256: String,
    /// Signature scheme.
    pub scheme: String,
}

/// One recorded refusal ("от подписи отказался").
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RefusalDoc {
    /// Seq of `act_refused`.
    pub seq: u64,
    /// Its server time, µs.
    pub ts: i64,
    /// `official` or `business`.
    pub role: String,
    /// Who refused.
    pub signer: String,
    /// Why.
    pub reason: String,
}

impl From<&ActState> for ActDoc {
    fn from(a: &ActState) -> ActDoc {
        ActDoc {
            seq: a.seq,
            ts: a.ts,
            sha256: a.sha256.clone(),
            size: a.size,
            head_seq: a.head_seq,
            head_hash: a.head_hash.clone(),
            language: a.language.clone(),
            signatures: a
                .signatures
                .iter()
                .map(|s| SignatureDoc {
                    seq: s.seq,
                    ts: s.ts,
                    role: s.role.as_str().into(),
                    signer: s.signer.clone(),
                    certificate_sha256: s.certificate_sha256.clone(),
                    signature_sha256: s.signature_sha256.clone(),
                    scheme: s.scheme.clone(),
                })
                .collect(),
            refusals: a
                .refusals
                .iter()
                .map(|r| RefusalDoc {
                    seq: r.seq,
                    ts: r.ts,
                    role: r.role.as_str().into(),
                    signer: r.signer.clone(),
                    reason: r.reason.clone(),
                })
                .collect(),
        }
    }
}

/// The act's state as the log shows it, plus what the caller may do.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActView {
    /// The act (null until formed): hashes, head, signatures, refusals.
    pub act: Option<ActDoc>,
    /// The role the caller would sign in (`official`, `business`), if any.
    pub you: Option<String>,
    /// Whether the caller may sign or refuse now.
    pub can_sign: bool,
    /// Whether the caller may form the act now.
    pub can_form: bool,
}

fn sync_error(e: OpError) -> ApiError {
    if let Some(e) = crate::error::sync_unavailable(&e) {
        return e;
    }
    let code: &'static str = match e.code.as_str() {
        "not_finished" => "not_finished",
        "cancelled" => "cancelled",
        "act_already_formed" => "act_already_formed",
        "act_stale" => "act_stale",
        "act_not_formed" => "act_not_formed",
        "act_mismatch" => "act_mismatch",
        "already_signed" => "already_signed",
        "already_refused" => "already_refused",
        "forbidden" => return ApiError::Forbidden,
        "invalid_field" => {
            return ApiError::validation(e.message);
        }
        _ => return ApiError::Internal(anyhow::anyhow!("act event refused: {e}")),
    };
    ApiError::Conflict {
        code,
        message: e.message,
    }
}

fn conflict(code: &'static str, message: &str) -> ApiError {
    ApiError::Conflict {
        code,
        message: message.into(),
    }
}

/// The role a caller signs in: the managing staff member is the official, the invitee the
/// business; reviewers sign nothing.
fn signer_role(caller: &Caller, access: Access) -> Option<SignerRole> {
    match caller {
        Caller::Staff(_) if access == Access::Manage => Some(SignerRole::Official),
        Caller::Staff(_) => None,
        Caller::Guest(_) => Some(SignerRole::Business),
        // The act is signed through the inspection's own business access (results link).
        Caller::Business(_) => None,
    }
}

async fn current_act(state: &AppState, id: Uuid) -> ApiResult<(u64, checklist_sync::State)> {
    let snap = state
        .live
        .sync
        .snapshot(id)
        .await
        .map_err(|e| anyhow::anyhow!("snapshot: {e}"))?;
    Ok((snap.seq, snap.state))
}

/// Reads the act's state (anyone who may see the inspection).
#[utoipa::path(get, path = "/api/inspections/{id}/act", tag = "act", params(("id" = Uuid, Path)),
    responses((status = 200, body = ActView), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ActView>> {
    let (_, access) = load_for(&state.db, &caller, id, Access::Read).await?;
    let (_, st) = current_act(&state, id).await?;
    let role = signer_role(&caller, access);
    let finished = st.lifecycle.status == checklist_sync::state::Status::Finished;
    Ok(Json(ActView {
        can_sign: match (&st.act, role) {
            (Some(a), Some(r)) => !a.has_answered(r),
            _ => false,
        },
        can_form: access == Access::Manage && finished && st.act.is_none(),
        you: role.map(|r| r.as_str().to_string()),
        act: st.act.as_deref().map(ActDoc::from),
    }))
}

async fn head_hash(state: &AppState, id: Uuid, seq: u64) -> ApiResult<String> {
    let row = sqlx::query("SELECT hash FROM events WHERE inspection_id = $1 AND seq = $2")
        .bind(id.to_string())
        .bind(seq as i64)
        .fetch_optional(&state.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("event {seq} of {id} is missing"))?;
    row.col(0)
}

/// The finalized recording, `None` when nothing was recorded, 409 while it is finalizing.
pub async fn recording(state: &AppState, id: Uuid) -> ApiResult<Option<media_recorder::Manifest>> {
    let dir = state.config.recordings_dir().join(id.to_string());
    let d = dir.clone();
    let manifest = tokio::task::spawn_blocking(move || media_recorder::finalize::read_manifest(&d))
        .await
        .map_err(|e| anyhow::anyhow!(e))?
        .map_err(|e| anyhow::anyhow!("manifest: {e}"))?;
    match manifest {
        Some(m) => Ok(Some(m)),
        None if dir.exists() => Err(conflict(
            "recording_not_ready",
            "the recording is being finalized; form the act in a moment",
        )),
        None => Ok(None),
    }
}

/// The clips and stills of a finalized recording are derived after it (crate::derived); an
/// act formed before that would lack them. 409 `recording_not_ready` until the deriver has
/// marked this recording done.
async fn derived_ready(state: &AppState, id: Uuid, m: &media_recorder::Manifest) -> ApiResult<()> {
    let done = state
        .config
        .recordings_dir()
        .join(id.to_string())
        .join(crate::derived::DONE_FILE);
    match tokio::fs::read_to_string(&done).await {
        Ok(s) if s == m.sha256 => Ok(()),
        _ => Err(conflict(
            "recording_not_ready",
            "clips and stills are being cut from the recording; form the act in a moment",
        )),
    }
}

/// Most bytes of pictures one act embeds; evidence past it is listed with its hash only.
pub const MAX_PICTURE_BYTES: u64 = 48 * 1024 * 1024;

/// The pictures the act shows (photos and stills of the log, in item order), read from the
/// blob store and checked against their logged hashes.
async fn pictures(
    state: &AppState,
    st: &checklist_sync::State,
) -> ApiResult<(std::collections::BTreeSet<String>, Vec<ActImage>)> {
    use futures_util::StreamExt;
    let mut shas = std::collections::BTreeSet::new();
    let mut images = Vec::new();
    let mut total = 0u64;
    for e in st.all_evidence() {
        let ev = &e.evidence;
        let (true, Some(sha), Some(size)) = (is_picture(ev), &ev.sha256, ev.size) else {
            continue;
        };
        // The limit depends only on the log, so the same log still gives the same act.
        if shas.contains(sha) || total + size > MAX_PICTURE_BYTES {
            continue;
        }
        let mut read = state
            .blobs
            .get(sha, None)
            .await
            .map_err(|e| anyhow::anyhow!("evidence {sha}: {e}"))?
            .ok_or_else(|| anyhow::anyhow!("evidence {sha} named by the log is not stored"))?;
        let mut bytes = Vec::with_capacity(size as usize);
        while let Some(chunk) = read.stream.next().await {
            bytes.extend_from_slice(&chunk.map_err(|e| anyhow::anyhow!("evidence {sha}: {e}"))?);
        }
        if sha256_hex(&bytes) != *sha {
            return Err(anyhow::anyhow!("stored evidence {sha} does not hash to its name").into());
        }
        total += size;
        shas.insert(sha.clone());
        images.push(ActImage {
            path: image_path(sha, ev.media_type.as_deref()),
            bytes,
        });
    }
    Ok((shas, images))
}

/// Builds and renders the act of `insp` from the log up to `seq`.
pub async fn render_at(
    state: &AppState,
    insp: &Inspection,
    seq: u64,
    st: &checklist_sync::State,
) -> ApiResult<(Vec<u8>, String)> {
    let head = head_hash(state, insp.id, seq).await?;
    let manifest = recording(state, insp.id).await?;
    if let Some(m) = &manifest {
        derived_ready(state, insp.id, m).await?;
    }
    let (shas, images) = pictures(state, st).await?;
    // The track up to the head the act is formed from (positions are not folded into the
    // state, so they are read from the log).
    let events = state
        .live
        .sync
        .read_events(insp.id)
        .await
        .map_err(|e| anyhow::anyhow!("events: {e}"))?;
    let upto: Vec<_> = events.into_iter().filter(|e| e.seq <= seq).collect();
    let points = crate::onsite::track_of(&upto);
    let track = crate::onsite::summarize(&points, insp.site().map(|c| (c.lat, c.lon)));
    let act = Act::build(&ActInputs {
        inspection: insp,
        state: st,
        head_seq: seq,
        head_hash: &head,
        recording: manifest.as_ref(),
        control_body: &state.config.control_body,
        verify_url: format!("{}/review/#{}", state.config.public_url, insp.id),
        rate_url: crate::ratings::http::rate_url(&state.config.public_url, insp.id),
        language: &insp.language,
        images: &shas,
        track: Some(&track),
    });
    let pdf = state
        .acts
        .renderer
        .render(act, images)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok((pdf, head))
}

/// Forms the act of a finished inspection (its inspector or an admin): renders the PDF from
/// the log's current head, stores it, and records `act_formed` in the log.
#[utoipa::path(post, path = "/api/inspections/{id}/act", tag = "act", params(("id" = Uuid, Path)),
    responses((status = 201, body = ActView), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn form(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<(StatusCode, Json<ActView>)> {
    let (insp, access) = load_for(&state.db, &caller, id, Access::Manage).await?;
    // The head may move while rendering (a phone reconnects): render again from the new head.
    for _ in 0..3 {
        let (seq, st) = current_act(&state, id).await?;
        if st.lifecycle.status != checklist_sync::state::Status::Finished {
            return Err(conflict(
                "not_finished",
                "the act is formed only after the inspection is finished",
            ));
        }
        if st.act.is_some() {
            return Err(conflict("act_already_formed", "the act is already formed"));
        }
        let (pdf, head) = render_at(&state, &insp, seq, &st).await?;
        // Registered only now, so that a refused request stores nothing.
        let participant = participants::register(&state.db, &caller, &insp, "api").await?;
        let who = principal(&caller, &insp, access, participant, "api");
        let sha = sha256_hex(&pdf);
        let path = state.acts.pdf_path(id, &sha);
        let written = path.clone();
        state
            .acts
            .keep(id, path, pdf.clone())
            .await
            .map_err(|e| anyhow::anyhow!("writing the act: {e}"))?;
        let event = Operation::ActFormed {
            sha256: sha,
            size: pdf.len() as u64,
            head_seq: seq,
            head_hash: head,
            language: insp.language.clone(),
        };
        match state
            .live
            .sync
            .submit(&who, &Live::room_spec(&insp), event, None)
            .await
        {
            Ok(_) => {
                let (_, st) = current_act(&state, id).await?;
                return Ok((
                    StatusCode::CREATED,
                    Json(ActView {
                        can_sign: true,
                        can_form: false,
                        you: Some(SignerRole::Official.as_str().into()),
                        act: st.act.as_deref().map(ActDoc::from),
                    }),
                ));
            }
            Err(e) => {
                // An act the log does not name must not stay beside the real one.
                let _ = tokio::fs::remove_file(&written).await;
                if e.code == "act_stale" {
                    continue;
                }
                return Err(sync_error(e));
            }
        }
    }
    Err(conflict(
        "act_stale",
        "the event log kept moving while the act was rendered; try again",
    ))
}

fn formed(st: &checklist_sync::State) -> ApiResult<&ActState> {
    st.act
        .as_deref()
        .ok_or_else(|| conflict("act_not_formed", "no act has been formed"))
}

/// The act's PDF.
#[utoipa::path(get, path = "/api/inspections/{id}/act.pdf", tag = "act", params(("id" = Uuid, Path)),
    responses((status = 200, description = "application/pdf"), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn pdf(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    let (insp, _) = load_for(&state.db, &caller, id, Access::Read).await?;
    let (_, st) = current_act(&state, id).await?;
    let act = formed(&st)?;
    let bytes = state
        .acts
        .read(id, &state.acts.pdf_path(id, &act.sha256))
        .await?;
    // Named in the act's own language.
    let name = names::file_name(&insp, FileKind::Act, "pdf", &insp.language);
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (
                header::CONTENT_DISPOSITION,
                names::disposition(false, &name),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// A signature as a file: `official.p7s` or `business.p7s`.
#[utoipa::path(get, path = "/api/inspections/{id}/act/signatures/{file}", tag = "act",
    params(("id" = Uuid, Path), ("file" = String, Path)),
    responses((status = 200, description = "application/pkcs7-signature"), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn signature_file(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, file)): Path<(Uuid, String)>,
) -> ApiResult<Response> {
    let (insp, _) = load_for(&state.db, &caller, id, Access::Read).await?;
    let role = file
        .strip_suffix(".p7s")
        .and_then(SignerRole::parse)
        .ok_or(ApiError::NotFound("signature"))?;
    let (_, st) = current_act(&state, id).await?;
    let sig = formed(&st)?
        .signature(role)
        .ok_or(ApiError::NotFound("signature"))?;
    let bytes = state
        .acts
        .read(id, &state.acts.signature_path(id, &sig.signature_sha256))
        .await?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/pkcs7-signature".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                names::disposition(
                    true,
                    &names::file_name(
                        &insp,
                        match role {
                            SignerRole::Official => FileKind::OfficialSignature,
                            SignerRole::Business => FileKind::BusinessSignature,
                        },
                        "p7s",
                        &insp.language,
                    ),
                ),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// Begin-signing request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeginSigning {
    /// The caller's certificate (from `POST /api/signing/certificates`).
    pub certificate_id: Uuid,
}

/// What the browser must sign.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ToBeSigned {
    /// The DER to sign with the key (ECDSA P-256 SHA-256), base64: CMS signed attributes
    /// naming the act's SHA-256 and the signing time.
    pub to_be_signed: String,
    /// The act's SHA-256.
    pub act_sha256: String,
    /// The signature scheme.
    pub scheme: String,
    /// `official` or `business`.
    pub role: String,
}

struct SigningContext {
    insp: Inspection,
    access: Access,
    role: SignerRole,
    act: ActState,
    digest: [u8; 32],
}

async fn signing_context(state: &AppState, caller: &Caller, id: Uuid) -> ApiResult<SigningContext> {
    let (insp, access) = load_for(&state.db, caller, id, Access::Read).await?;
    let role = signer_role(caller, access).ok_or(ApiError::Forbidden)?;
    let (_, st) = current_act(state, id).await?;
    let act = formed(&st)?.clone();
    if act.signature(role).is_some() {
        return Err(conflict("already_signed", "this party has already signed"));
    }
    if act.refusals.iter().any(|r| r.role == role) {
        return Err(conflict(
            "already_refused",
            "this party has already refused",
        ));
    }
    let digest: [u8; 32] = hex::decode(&act.sha256)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| anyhow::anyhow!("stored act hash is not SHA-256"))?;
    Ok(SigningContext {
        insp,
        access,
        role,
        act,
        digest,
    })
}

fn now_secs() -> u64 {
    chrono::Utc::now().timestamp().max(0) as u64
}

/// Starts a signature: the server prepares what the browser's key must sign.
#[utoipa::path(post, path = "/api/inspections/{id}/act/signature/begin", tag = "act", params(("id" = Uuid, Path)),
    request_body = BeginSigning,
    responses((status = 200, body = ToBeSigned), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn begin(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<BeginSigning>,
) -> ApiResult<Json<ToBeSigned>> {
    let ctx = signing_context(&state, &caller, id).await?;
    own_certificate(&state, &caller, req.certificate_id).await?;
    let tbs = state
        .signing
        .signer
        .to_be_signed(&ctx.digest, now_secs())
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(Json(ToBeSigned {
        to_be_signed: base64::engine::general_purpose::STANDARD.encode(tbs),
        act_sha256: ctx.act.sha256,
        scheme: state.signing.signer.scheme().into(),
        role: ctx.role.as_str().into(),
    }))
}

/// Sign request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    /// The caller's certificate.
    pub certificate_id: Uuid,
    /// What `begin` returned, base64.
    pub to_be_signed: String,
    /// The key's signature of it: P1363 (r‖s), base64.
    pub signature: String,
}

/// A recorded signature.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Signed {
    /// `official` or `business`.
    pub role: String,
    /// SHA-256 of the CMS signature.
    pub signature_sha256: String,
    /// The log's seq of `act_signed`.
    pub seq: u64,
}

/// Completes a signature: verifies it, stores the detached CMS, records `act_signed`.
#[utoipa::path(post, path = "/api/inspections/{id}/act/signature", tag = "act", params(("id" = Uuid, Path)),
    request_body = SignRequest,
    responses((status = 201, body = Signed), (status = 400, body = crate::error::ErrorBody), (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn sign(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<SignRequest>,
) -> ApiResult<(StatusCode, Json<Signed>)> {
    let ctx = signing_context(&state, &caller, id).await?;
    let cert = own_certificate(&state, &caller, req.certificate_id).await?;
    let cert_der = ca::pem_to_der(&cert.pem)?;
    let tbs = decode_b64("to_be_signed", &req.to_be_signed)?;
    let raw = decode_b64("signature", &req.signature)?;
    let p7s = state
        .signing
        .signer
        .finish(&cert_der, &ctx.digest, &tbs, &raw, now_secs())
        .map_err(|e| match e {
            CmsError::BadSignature | CmsError::Malformed(_) | CmsError::NotP256 => {
                ApiError::Invalid {
                    code: "signature_invalid",
                    message: e.to_string(),
                }
            }
            other => ApiError::Invalid {
                code: "signed_attributes_invalid",
                message: other.to_string(),
            },
        })?;
    let sig_sha = sha256_hex(&p7s);
    let path = state.acts.signature_path(id, &sig_sha);
    let written = path.clone();
    state
        .acts
        .keep(id, path, p7s)
        .await
        .map_err(|e| anyhow::anyhow!("writing the signature: {e}"))?;
    let participant = participants::register(&state.db, &caller, &ctx.insp, "api").await?;
    let who = principal(&caller, &ctx.insp, ctx.access, participant, "api");
    let event = Operation::ActSigned {
        act_sha256: ctx.act.sha256.clone(),
        role: ctx.role,
        signer: cert.common_name.clone(),
        certificate_sha256: cert.fingerprint.clone(),
        signature_sha256: sig_sha.clone(),
        scheme: state.signing.signer.scheme().into(),
    };
    let committed = match state
        .live
        .sync
        .submit(&who, &Live::room_spec(&ctx.insp), event, None)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            // A signature the log does not name must not stay beside the real ones.
            let _ = tokio::fs::remove_file(&written).await;
            return Err(sync_error(e));
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(Signed {
            role: ctx.role.as_str().into(),
            signature_sha256: sig_sha,
            seq: committed.seq,
        }),
    ))
}

/// Refusal request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefuseRequest {
    /// Why (1–4000 characters).
    pub reason: String,
}

/// A recorded refusal.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Refused {
    /// `official` or `business`.
    pub role: String,
    /// The log's seq of `act_refused`.
    pub seq: u64,
}

/// Refuses to sign ("от подписи отказался"), with a reason; recorded as `act_refused`.
#[utoipa::path(post, path = "/api/inspections/{id}/act/refusal", tag = "act", params(("id" = Uuid, Path)),
    request_body = RefuseRequest,
    responses((status = 201, body = Refused), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
              (status = 409, body = crate::error::ErrorBody)))]
pub async fn refuse(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<RefuseRequest>,
) -> ApiResult<(StatusCode, Json<Refused>)> {
    let reason = req.reason.trim().to_string();
    let n = reason.chars().count();
    if !(1..=4000).contains(&n) {
        return Err(ApiError::validation("reason must have 1–4000 characters"));
    }
    let ctx = signing_context(&state, &caller, id).await?;
    let signer = match &caller {
        Caller::Staff(s) => s.display_name.clone(),
        Caller::Guest(g) => g.label.clone(),
        Caller::Business(b) => b.label.clone(),
    };
    let participant = participants::register(&state.db, &caller, &ctx.insp, "api").await?;
    let who = principal(&caller, &ctx.insp, ctx.access, participant, "api");
    let committed = state
        .live
        .sync
        .submit(
            &who,
            &Live::room_spec(&ctx.insp),
            Operation::ActRefused {
                act_sha256: ctx.act.sha256.clone(),
                role: ctx.role,
                signer,
                reason,
            },
            None,
        )
        .await
        .map_err(sync_error)?;
    Ok((
        StatusCode::CREATED,
        Json(Refused {
            role: ctx.role.as_str().into(),
            seq: committed.seq,
        }),
    ))
}

/// The evidence bundle: one ZIP with the act, its signatures and certificates, the CA
/// certificate, the recording and chapters, the event log, a manifest and VERIFY.md.
#[utoipa::path(get, path = "/api/inspections/{id}/bundle.zip", tag = "act", params(("id" = Uuid, Path)),
    responses((status = 200, description = "application/zip"), (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn bundle(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    let (insp, _) = load_for(&state.db, &caller, id, Access::Read).await?;
    // The raw evidence is the business's only as configured (docs/security.md).
    if !crate::inspections::may_read_raw(&state.config, &caller) {
        return Err(ApiError::Forbidden);
    }
    let file = super::bundle::build(&state, &insp).await?;
    let len = file.metadata().map(|m| m.len()).ok();
    // The temporary file is already unlinked; the open handle streams it.
    let f = tokio::fs::File::from_std(file);
    let stream = tokio_util_stream(f);
    let mut resp = Response::new(Body::from_stream(stream));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/zip"),
    );
    let name = names::file_name(&insp, FileKind::Bundle, "zip", &insp.language);
    if let Ok(v) = header::HeaderValue::from_str(&names::disposition(true, &name)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(len) = len {
        h.insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    }
    Ok(resp)
}

/// Streams a file in 64 KiB chunks.
fn tokio_util_stream(
    mut f: tokio::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<axum::body::Bytes>> {
    async_stream(move |tx| async move {
        use tokio::io::AsyncReadExt;
        loop {
            let mut buf = vec![0u8; 64 * 1024];
            match f.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.send(Ok(axum::body::Bytes::from(buf))).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    break;
                }
            }
        }
    })
}

fn async_stream<F, Fut>(
    f: F,
) -> impl futures_util::Stream<Item = std::io::Result<axum::body::Bytes>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<std::io::Result<axum::body::Bytes>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(f(tx));
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
