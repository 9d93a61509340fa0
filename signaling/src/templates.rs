//! Checklist templates: versioned, imported from a documented JSON format (docs/templates.md).
//!
//! An item's `id` is stable across versions of a template so results can be compared; an
//! inspection pins one version, so editing a template never changes a past inspection.

use std::collections::HashSet;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use uuid::Uuid;

use crate::auth::{Caller, Role};
use crate::db::{now_micros, RowExt};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::AppState;

/// Templates shipped with the server and imported on first start.
pub const BUNDLED: [&str; 2] = [
    include_str!("../../templates/fire-safety.json"),
    include_str!("../../templates/sanitary-catering.json"),
];

/// The import format (see docs/templates.md).
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateDoc {
    /// Stable code of the template family, e.g. `fire-safety-basic`.
    pub code: String,
    /// Version, from 1.
    pub version: i64,
    /// Title.
    pub title: String,
    /// What the checklist is for.
    #[serde(default)]
    pub description: String,
    /// The normative acts it checks.
    #[serde(default)]
    pub legal_basis: String,
    /// Items in order.
    pub items: Vec<ItemDoc>,
}

/// One checklist item of the import format.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemDoc {
    /// Stable id, unique within the template.
    pub id: String,
    /// Shown number, e.g. `3` or `3.1`.
    pub number: String,
    /// The question.
    pub question: String,
    /// The legal requirement it checks.
    #[serde(default)]
    pub requirement: String,
    /// Answer kind; `compliance` (compliant / violation / not applicable) is the one kind now.
    #[serde(default = "default_kind")]
    pub answer_kind: String,
}

fn default_kind() -> String {
    "compliance".into()
}

/// A template as listed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TemplateSummary {
    /// Id.
    pub id: Uuid,
    /// Family code.
    pub code: String,
    /// Version.
    pub version: i64,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Legal basis.
    pub legal_basis: String,
    /// Number of items.
    pub item_count: i64,
}

/// A checklist item as stored.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Item {
    /// Stable id.
    pub id: String,
    /// Shown number.
    pub number: String,
    /// Question.
    pub question: String,
    /// Legal requirement.
    pub requirement: String,
    /// Answer kind.
    pub answer_kind: String,
}

/// A template with its items.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Template {
    /// Summary fields.
    #[serde(flatten)]
    pub summary: TemplateSummary,
    /// Items in order.
    pub items: Vec<Item>,
}

impl TemplateDoc {
    /// Checks everything the database does not.
    pub fn validate(&self) -> Result<(), String> {
        let slug = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        };
        if !slug(&self.code) {
            return Err(
                "code must be 1–64 characters of ASCII letters, digits, '-', '_' or '.'".into(),
            );
        }
        if self.version < 1 {
            return Err("version must be at least 1".into());
        }
        if self.title.trim().is_empty() {
            return Err("title is required".into());
        }
        if self.items.is_empty() || self.items.len() > 1000 {
            return Err("a template needs 1–1000 items".into());
        }
        let mut seen = HashSet::new();
        for item in &self.items {
            if !slug(&item.id) {
                return Err(format!("item id {:?} must be 1–64 characters of ASCII letters, digits, '-', '_' or '.'", item.id));
            }
            if !seen.insert(item.id.as_str()) {
                return Err(format!("item id {:?} is used twice", item.id));
            }
            if item.number.trim().is_empty() || item.question.trim().is_empty() {
                return Err(format!("item {:?} needs a number and a question", item.id));
            }
            if item.answer_kind != "compliance" {
                return Err(format!(
                    "item {:?}: unknown answer_kind {:?}",
                    item.id, item.answer_kind
                ));
            }
        }
        Ok(())
    }
}

/// Imports a template version; refuses a duplicate (code, version).
pub async fn import(db: &AnyPool, doc: &TemplateDoc) -> ApiResult<Uuid> {
    doc.validate().map_err(ApiError::validation)?;
    let id = Uuid::new_v4();
    let mut tx = crate::db::begin(&db).await?;
    let inserted = sqlx::query(
        "INSERT INTO templates (id, code, version, title, description, legal_basis, body, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (code, version) DO NOTHING",
    )
    .bind(id.to_string())
    .bind(&doc.code)
    .bind(doc.version)
    .bind(&doc.title)
    .bind(&doc.description)
    .bind(&doc.legal_basis)
    .bind(serde_json::to_string(doc).map_err(|e| anyhow::anyhow!(e))?)
    .bind(now_micros())
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(ApiError::Conflict {
            code: "template_exists",
            message: format!(
                "template {} version {} already exists",
                doc.code, doc.version
            ),
        });
    }
    for (pos, item) in doc.items.iter().enumerate() {
        sqlx::query(
            "INSERT INTO template_items (template_id, item_id, position, number, question, requirement, answer_kind) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.to_string())
        .bind(&item.id)
        .bind(pos as i64)
        .bind(&item.number)
        .bind(&item.question)
        .bind(&item.requirement)
        .bind(&item.answer_kind)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(id)
}

/// Imports the bundled templates that are not there yet.
pub async fn import_bundled(db: &AnyPool) -> anyhow::Result<()> {
    for text in BUNDLED {
        let doc: TemplateDoc = serde_json::from_str(text)?;
        match import(db, &doc).await {
            Ok(_) | Err(ApiError::Conflict { .. }) => {}
            Err(e) => anyhow::bail!("cannot import bundled template {}: {e}", doc.code),
        }
    }
    Ok(())
}

/// Items of a template, in order.
pub async fn items(db: &AnyPool, template_id: &str) -> ApiResult<Vec<Item>> {
    let rows = sqlx::query(
        "SELECT item_id, number, question, requirement, answer_kind FROM template_items \
         WHERE template_id = $1 ORDER BY position",
    )
    .bind(template_id)
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(Item {
                id: r.col(0)?,
                number: r.col(1)?,
                question: r.col(2)?,
                requirement: r.col(3)?,
                answer_kind: r.col(4)?,
            })
        })
        .collect()
}

const SUMMARY_SELECT: &str =
    "SELECT t.id, t.code, t.version, t.title, t.description, t.legal_basis, \
     (SELECT COUNT(*) FROM template_items i WHERE i.template_id = t.id) FROM templates t";

fn summary_from_row(r: sqlx::any::AnyRow) -> ApiResult<TemplateSummary> {
    Ok(TemplateSummary {
        id: r.uuid(0)?,
        code: r.col(1)?,
        version: r.col(2)?,
        title: r.col(3)?,
        description: r.col(4)?,
        legal_basis: r.col(5)?,
        item_count: r.col(6)?,
    })
}

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/templates",
            get(list).post(create).layer(DefaultBodyLimit::max(1 << 20)),
        )
        .route("/api/templates/{id}", get(show))
}

/// Lists templates (staff).
#[utoipa::path(get, path = "/api/templates", tag = "templates", responses((status = 200, body = TemplateList)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<TemplateList>> {
    caller.staff()?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SUMMARY_SELECT} ORDER BY t.code, t.version DESC"
    )))
    .fetch_all(&state.db)
    .await?;
    let templates = rows
        .into_iter()
        .map(summary_from_row)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(TemplateList { templates }))
}

/// The list of templates.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TemplateList {
    /// Every version of every template, newest version first per code.
    pub templates: Vec<TemplateSummary>,
}

/// One template with items (staff).
#[utoipa::path(get, path = "/api/templates/{id}", tag = "templates", params(("id" = Uuid, Path)),
    responses((status = 200, body = Template), (status = 404, body = crate::error::ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Template>> {
    caller.staff()?;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{SUMMARY_SELECT} WHERE t.id = $1"
    )))
    .bind(id.to_string())
    .fetch_optional(&state.db)
    .await?
    .ok_or(ApiError::NotFound("template"))?;
    let items = items(&state.db, &id.to_string()).await?;
    Ok(Json(Template {
        summary: summary_from_row(row)?,
        items,
    }))
}

/// Imports a template (admin).
#[utoipa::path(post, path = "/api/templates", tag = "templates", request_body = TemplateDoc,
    responses((status = 201, body = Template), (status = 409, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(doc): ApiJson<TemplateDoc>,
) -> ApiResult<(StatusCode, Json<Template>)> {
    caller.require(&[Role::Admin])?;
    let id = import(&state.db, &doc).await?;
    let Json(t) = show(State(state), caller, Path(id)).await?;
    Ok((StatusCode::CREATED, Json(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_templates_are_valid() {
        for text in BUNDLED {
            let doc: TemplateDoc = serde_json::from_str(text).unwrap();
            doc.validate().unwrap();
            assert!(doc.items.len() >= 10);
        }
    }

    #[test]
    fn duplicate_item_ids_are_refused() {
        let mut doc: TemplateDoc = serde_json::from_str(BUNDLED[0]).unwrap();
        doc.items[1].id = doc.items[0].id.clone();
        assert!(doc.validate().unwrap_err().contains("used twice"));
    }
}
