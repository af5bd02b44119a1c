//! `/v1/templates`: templates with immutable versions. Saving checks every part
//! compiles (a 422 names the part, line and column); a new version, or a rollback (a
//! new version copying an old one), never changes what an earlier send used; preview
//! renders a version with sample data.

use super::AppState;
use super::auth::{Scoped, scopes};
use super::json::Body;
use super::problem::{ApiResult, FieldError, Problem};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{SubsecRound, Utc};
use herald_core::pipeline::personalize::UNSUBSCRIBE_URL;
use herald_core::templates::{
    DEFAULT_LOCALE, Recipient, Renderer, Template, TemplateError, TemplateParts, TemplateVersion,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplate {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(deserialize_with = "herald_core::objects::object_values")]
    pub locales: BTreeMap<String, TemplateParts>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVersion {
    #[serde(deserialize_with = "herald_core::objects::object_values")]
    pub locales: BTreeMap<String, TemplateParts>,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    #[serde(deserialize_with = "herald_core::objects::whole_number")]
    pub version: u32,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Preview {
    /// Defaults to the latest version.
    #[serde(default, deserialize_with = "herald_core::objects::optional_whole_number")]
    pub version: Option<u32>,
    #[serde(default)]
    pub locale: Option<String>,
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateWithVersion {
    #[serde(flatten)]
    pub template: Template,
    pub version: TemplateVersion,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Rendered {
    pub template_id: String,
    pub version: u32,
    /// The locale variant used (after fallback).
    pub locale: String,
    pub rendered: TemplateParts,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateList {
    pub data: Vec<Template>,
}

fn validate_id(id: &str) -> Result<(), Problem> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Problem::field("id", "1-64 characters of lowercase letters, digits, '-' and '_'"))
    }
}

/// Every locale is a BCP 47 tag (or `default`, which must be there), every variant has
/// at least one channel, and every part compiles.
fn validate_locales(locales: &BTreeMap<String, TemplateParts>) -> Result<(), Problem> {
    if !locales.contains_key(DEFAULT_LOCALE) {
        return Err(Problem::field("locales", "a 'default' variant is required"));
    }
    let mut errors = Vec::new();
    for (locale, parts) in locales {
        let field = format!("locales.{locale}");
        let tag_ok = locale == DEFAULT_LOCALE
            || (locale.len() <= 35
                && locale
                    .split('-')
                    .all(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric())));
        if !tag_ok {
            errors.push(FieldError {
                field,
                message: "not a BCP 47 language tag (zh-Hant-TW)".into(),
            });
            continue;
        }
        // A webhook part may be constant JSON, with no template strings at all.
        if parts.is_empty() {
            errors.push(FieldError { field, message: "give at least one channel's parts".into() });
            continue;
        }
        if let Err(TemplateError::Syntax { part, line, column, message }) = Renderer::check(parts) {
            errors.push(FieldError {
                field: format!("{field}.{part}"),
                message: format!("syntax error at line {line}, column {column}: {message}"),
            });
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(Problem::invalid(errors)) }
}

fn new_version(
    id: &str,
    version: u32,
    locales: BTreeMap<String, TemplateParts>,
    note: Option<String>,
) -> TemplateVersion {
    TemplateVersion {
        template_id: id.to_owned(),
        version,
        locales,
        note,
        created_at: Utc::now().trunc_subsecs(3),
    }
}

#[utoipa::path(post, path = "/v1/templates", tag = "templates", request_body = CreateTemplate,
    responses((status = 201, body = TemplateWithVersion), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = ["manage"])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Scoped<scopes::Manage>,
    Body(request): Body<CreateTemplate>,
) -> ApiResult<(StatusCode, Json<TemplateWithVersion>)> {
    validate_id(&request.id)?;
    if request.name.trim().is_empty() || request.name.len() > 100 {
        return Err(Problem::field("name", "1 to 100 characters"));
    }
    validate_locales(&request.locales)?;
    let now = Utc::now().trunc_subsecs(3);
    let template = Template {
        id: request.id.clone(),
        app_id: caller.app_id().to_owned(),
        name: request.name.trim().to_owned(),
        description: request.description,
        latest_version: 1,
        created_at: now,
        updated_at: now,
    };
    let version = new_version(&request.id, 1, request.locales, None);
    if !state.templates.create_template(&template, &version).await? {
        return Err(Problem::conflict(
            "template-exists",
            format!("template '{}' exists", request.id),
        ));
    }
    Ok((StatusCode::CREATED, Json(TemplateWithVersion { template, version })))
}

#[utoipa::path(get, path = "/v1/templates", tag = "templates",
    responses((status = 200, body = TemplateList)), security(("api_key" = ["read"])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Scoped<scopes::Read>,
) -> ApiResult<Json<TemplateList>> {
    Ok(Json(TemplateList { data: state.templates.list_templates(caller.app_id()).await? }))
}

async fn load(state: &AppState, app: &str, id: &str) -> ApiResult<Template> {
    state.templates.template(app, id).await?.ok_or_else(|| Problem::not_found("template"))
}

async fn load_version(
    state: &AppState,
    app: &str,
    id: &str,
    version: u32,
) -> ApiResult<TemplateVersion> {
    state
        .templates
        .template_version(app, id, version)
        .await?
        .ok_or_else(|| Problem::not_found("template version"))
}

#[utoipa::path(get, path = "/v1/templates/{id}", tag = "templates", params(("id" = String, Path)),
    responses((status = 200, body = TemplateWithVersion), (status = 404, body = Problem)), security(("api_key" = ["read"])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Scoped<scopes::Read>,
    Path(id): Path<String>,
) -> ApiResult<Json<TemplateWithVersion>> {
    let template = load(&state, caller.app_id(), &id).await?;
    let version = load_version(&state, caller.app_id(), &id, template.latest_version).await?;
    Ok(Json(TemplateWithVersion { template, version }))
}

#[utoipa::path(get, path = "/v1/templates/{id}/versions/{version}", tag = "templates",
    params(("id" = String, Path), ("version" = u32, Path)),
    responses((status = 200, body = TemplateVersion), (status = 404, body = Problem)), security(("api_key" = ["read"])))]
pub async fn get_version(
    State(state): State<AppState>,
    caller: Scoped<scopes::Read>,
    Path((id, version)): Path<(String, u32)>,
) -> ApiResult<Json<TemplateVersion>> {
    Ok(Json(load_version(&state, caller.app_id(), &id, version).await?))
}

#[utoipa::path(delete, path = "/v1/templates/{id}", tag = "templates", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("api_key" = ["manage"])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Scoped<scopes::Manage>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    Problem::deleted(state.templates.delete_template(caller.app_id(), &id).await?, "template")
}

/// Publishes `locales` as the template's next version, retrying if another publish
/// took that number first.
async fn publish(
    state: &AppState,
    app: &str,
    id: &str,
    locales: BTreeMap<String, TemplateParts>,
    note: Option<String>,
) -> ApiResult<TemplateVersion> {
    for _ in 0..5 {
        let template = load(state, app, id).await?;
        let version = new_version(id, template.latest_version + 1, locales.clone(), note.clone());
        if state.templates.publish_template_version(app, &version).await? {
            return Ok(version);
        }
    }
    Err(Problem::conflict("template-busy", "the template kept changing; try again"))
}

#[utoipa::path(post, path = "/v1/templates/{id}/versions", tag = "templates", params(("id" = String, Path)),
    request_body = NewVersion,
    responses((status = 201, body = TemplateVersion), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = ["manage"])))]
pub async fn create_version(
    State(state): State<AppState>,
    caller: Scoped<scopes::Manage>,
    Path(id): Path<String>,
    Body(request): Body<NewVersion>,
) -> ApiResult<(StatusCode, Json<TemplateVersion>)> {
    validate_locales(&request.locales)?;
    let version = publish(&state, caller.app_id(), &id, request.locales, request.note).await?;
    Ok((StatusCode::CREATED, Json(version)))
}

#[utoipa::path(post, path = "/v1/templates/{id}/rollback", tag = "templates", params(("id" = String, Path)),
    request_body = Rollback,
    responses((status = 201, body = TemplateVersion), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = ["manage"])))]
pub async fn rollback(
    State(state): State<AppState>,
    caller: Scoped<scopes::Manage>,
    Path(id): Path<String>,
    Body(request): Body<Rollback>,
) -> ApiResult<(StatusCode, Json<TemplateVersion>)> {
    let app = caller.app_id();
    load(&state, app, &id).await?; // an unknown template is a 404, not a bad version
    let old =
        state.templates.template_version(app, &id, request.version).await?.ok_or_else(|| {
            Problem::field("version", format!("template '{id}' has no version {}", request.version))
        })?;
    let note = Some(format!("rollback to version {}", request.version));
    let version = publish(&state, app, &id, old.locales, note).await?;
    Ok((StatusCode::CREATED, Json(version)))
}

/// What `{{ unsubscribe_url }}` shows in a preview: each real send carries a signed link
/// for its user.
const PREVIEW_UNSUBSCRIBE_URL: &str = "https://unsubscribe.example/preview";

/// Renders a version for a locale and time zone, as a send would.
pub fn render_version(
    renderer: &Renderer,
    version: &TemplateVersion,
    locale: Option<&str>,
    time_zone: Option<&str>,
    data: &Value,
) -> ApiResult<(String, TemplateParts)> {
    let time_zone = match time_zone {
        Some(zone) => zone.parse().map_err(|_| {
            Problem::field("time_zone", format!("'{zone}' is not an IANA time zone"))
        })?,
        None => chrono_tz::UTC,
    };
    if !data.is_object() && !data.is_null() {
        return Err(Problem::field("data", "an object of template variables"));
    }
    let recipient = Recipient { locale: locale.map(str::to_owned), time_zone };
    herald_core::templates::render_for(renderer, version, &recipient, data).map_err(|e| match e {
        TemplateError::Render { part, message } if part == "locale" => {
            Problem::field("locale", message)
        }
        TemplateError::TooLarge { ref part, .. } => Problem::field(part, e.to_string()),
        e => Problem::field("data", e.to_string()),
    })
}

#[utoipa::path(post, path = "/v1/templates/{id}/preview", tag = "templates", params(("id" = String, Path)),
    request_body = Preview,
    responses((status = 200, body = Rendered), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = ["read"])))]
pub async fn preview(
    State(state): State<AppState>,
    caller: Scoped<scopes::Read>,
    Path(id): Path<String>,
    Body(request): Body<Preview>,
) -> ApiResult<Json<Rendered>> {
    let app = caller.app_id();
    let number = match request.version {
        Some(v) => v,
        None => load(&state, app, &id).await?.latest_version,
    };
    // A version named in the body that the template lacks is the body's error (422); an
    // unknown template is a 404.
    let version = match request.version {
        Some(_) => load(&state, app, &id).await.and(
            state.templates.template_version(app, &id, number).await?.ok_or_else(|| {
                Problem::field("version", format!("template '{id}' has no version {number}"))
            }),
        )?,
        None => load_version(&state, app, &id, number).await?,
    };
    // A send fills in each user's own link; a preview shows where it would go.
    let mut data = if request.data.is_null() { serde_json::json!({}) } else { request.data };
    if let Some(fields) = data.as_object_mut() {
        fields.entry(UNSUBSCRIBE_URL).or_insert_with(|| PREVIEW_UNSUBSCRIBE_URL.into());
    }
    let (locale, rendered) = render_version(
        &state.renderer,
        &version,
        request.locale.as_deref(),
        request.time_zone.as_deref(),
        &data,
    )?;
    Ok(Json(Rendered { template_id: id, version: number, locale, rendered }))
}
