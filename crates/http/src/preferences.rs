//! `/v1/users/{id}/preferences` and `/v1/categories`: what each user wants, and the
//! app's defaults per category (including which ones are critical).

use super::AppState;
use super::auth::{Scoped, scopes};
use super::json::{Body, decode, from_value};
use super::problem::{ApiResult, FieldError, Problem};
use super::validate::{Errors, category as check_category};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{SubsecRound, Utc};
use herald_core::domain::preferences::{CategoryCap, MAX_CAP};
use herald_core::domain::{CategorySettings, Channel, Preferences};
use herald_core::ports::PreferencesWrite;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

fn valid_category(name: &str) -> bool {
    let mut errors = Errors::default();
    check_category(&mut errors, Some(name));
    errors.0.is_empty()
}

fn invalid(problems: Vec<(String, String)>) -> Problem {
    Problem::invalid(
        problems.into_iter().map(|(field, message)| FieldError { field, message }).collect(),
    )
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PreferencesView {
    pub user_id: String,
    #[serde(flatten)]
    pub preferences: Preferences,
    /// Bumped by every change.
    pub revision: u64,
}

#[utoipa::path(get, path = "/v1/users/{id}/preferences", tag = "preferences", params(("id" = String, Path)),
    responses((status = 200, body = PreferencesView), (status = 404, body = Problem)), security(("api_key" = ["read"])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Scoped<scopes::Read>,
    Path(id): Path<String>,
) -> ApiResult<Tagged> {
    let user =
        state.users.user(caller.app_id(), &id).await?.ok_or_else(|| Problem::not_found("user"))?;
    Ok(tagged(PreferencesView {
        user_id: user.id,
        preferences: user.preferences,
        revision: user.preferences_revision,
    }))
}

/// The view with its revision as the `ETag`, for `If-Match`.
type Tagged = ([(axum::http::HeaderName, String); 1], Json<PreferencesView>);

fn tagged(view: PreferencesView) -> Tagged {
    ([(axum::http::header::ETAG, format!("\"{}\"", view.revision))], Json(view))
}

/// Replaces the user's preferences. `If-Match: "<revision>"` makes it conditional, as
/// does a `revision` in the body (what GET returned, sent back); `If-Match` wins.
#[utoipa::path(put, path = "/v1/users/{id}/preferences", tag = "preferences",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "The revision read, in quotes")),
    request_body(content = Preferences, description = "The preferences; what GET returned is accepted too (its user_id must match, its revision makes the write conditional)"),
    responses((status = 200, body = PreferencesView), (status = 404, body = Problem),
        (status = 412, body = Problem, description = "Changed since that revision"), (status = 422, body = Problem)),
    security(("api_key" = ["manage"])))]
pub async fn put(
    State(state): State<AppState>,
    caller: Scoped<scopes::Manage>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Tagged> {
    // What GET returned may come back as it is: `user_id` must name this user, and
    // `revision` makes the write conditional (as `If-Match` does, which wins).
    let (mut body, _): (serde_json::Value, _) = decode(&headers, body)?;
    let fields = body.as_object_mut().ok_or_else(|| Problem::field("(body)", "an object"))?;
    if let Some(named) = fields.remove("user_id")
        && named.as_str() != Some(id.as_str())
    {
        return Err(Problem::field("user_id", "names another user than the path"));
    }
    let revision_field = match fields.remove("revision") {
        Some(value) => Some(value.as_u64().ok_or_else(|| Problem::field("revision", "a number"))?),
        None => None,
    };
    let preferences: Preferences = from_value(body)?;
    let problems = preferences.problems(valid_category);
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    let if_match = headers.get("if-match").map(|v| v.to_str().unwrap_or("").trim());
    let expected = match if_match.filter(|tag| !tag.is_empty()) {
        // `*`: any revision will do (the user must exist, as always).
        Some("*") => None,
        Some(tag) => Some(
            // A weak tag (`W/"3"`, as compressing proxies make them) names the same one.
            tag.trim_start_matches("W/")
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .and_then(|t| t.parse::<u64>().ok())
                .ok_or_else(|| Problem::field("If-Match", "the revision in quotes, as \"3\""))?,
        ),
        None => revision_field,
    };
    match state.preferences.put_preferences(caller.app_id(), &id, &preferences, expected).await? {
        PreferencesWrite::Saved { revision } => {
            Ok(tagged(PreferencesView { user_id: id, preferences, revision }))
        }
        PreferencesWrite::NoUser => Err(Problem::not_found("user")),
        PreferencesWrite::Conflict => Err(Problem::new(
            StatusCode::PRECONDITION_FAILED,
            "revision-mismatch",
            "Preferences changed",
            "the preferences changed since that revision; read them again",
        )),
    }
}

/// What a caller writes for a category.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryRequest {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub critical: bool,
    #[serde(default = "yes")]
    pub enabled_by_default: bool,
    #[serde(default)]
    pub channels: BTreeMap<Channel, bool>,
    #[serde(deserialize_with = "herald_core::objects::optional_object", default)]
    pub frequency_cap: Option<CategoryCap>,
}

fn yes() -> bool {
    true
}

#[utoipa::path(put, path = "/v1/categories/{name}", tag = "preferences", params(("name" = String, Path)),
    request_body = CategoryRequest,
    responses((status = 201, body = CategorySettings), (status = 200, body = CategorySettings), (status = 422, body = Problem)),
    security(("api_key" = ["manage"])))]
pub async fn put_category(
    State(state): State<AppState>,
    caller: Scoped<scopes::Manage>,
    Path(name): Path<String>,
    Body(request): Body<CategoryRequest>,
) -> ApiResult<(StatusCode, Json<CategorySettings>)> {
    let mut problems = Vec::new();
    if !valid_category(&name) {
        problems
            .push(("name".to_owned(), "1 to 64 characters of a-z, 0-9, '_', '-' and '.'".into()));
    }
    if request.frequency_cap.is_some_and(|cap| cap.limit == 0 || cap.limit > MAX_CAP) {
        problems.push(("frequency_cap.limit".to_owned(), format!("1 to {MAX_CAP}")));
    }
    if request.description.as_ref().is_some_and(|d| d.len() > 500) {
        problems.push(("description".to_owned(), "at most 500 characters".into()));
    }
    if !problems.is_empty() {
        return Err(invalid(problems));
    }
    let now = Utc::now().trunc_subsecs(3);
    let settings = CategorySettings {
        name: name.clone(),
        app_id: caller.app_id().to_owned(),
        description: request.description,
        critical: request.critical,
        enabled_by_default: request.enabled_by_default,
        channels: request.channels,
        frequency_cap: request.frequency_cap,
        created_at: now,
        updated_at: now,
    };
    let created = state.preferences.put_category(&settings).await?;
    let stored = state.preferences.category(caller.app_id(), &name).await?.unwrap_or(settings);
    Ok(Problem::upserted(created, stored))
}

#[utoipa::path(get, path = "/v1/categories/{name}", tag = "preferences", params(("name" = String, Path)),
    responses((status = 200, body = CategorySettings), (status = 404, body = Problem)), security(("api_key" = ["read"])))]
pub async fn get_category(
    State(state): State<AppState>,
    caller: Scoped<scopes::Read>,
    Path(name): Path<String>,
) -> ApiResult<Json<CategorySettings>> {
    Problem::found(state.preferences.category(caller.app_id(), &name).await?, "category")
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CategoryList {
    pub data: Vec<CategorySettings>,
}

#[utoipa::path(get, path = "/v1/categories", tag = "preferences",
    responses((status = 200, body = CategoryList)), security(("api_key" = ["read"])))]
pub async fn list_categories(
    State(state): State<AppState>,
    caller: Scoped<scopes::Read>,
) -> ApiResult<Json<CategoryList>> {
    Ok(Json(CategoryList { data: state.preferences.list_categories(caller.app_id()).await? }))
}

#[utoipa::path(delete, path = "/v1/categories/{name}", tag = "preferences", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("api_key" = ["manage"])))]
pub async fn delete_category(
    State(state): State<AppState>,
    caller: Scoped<scopes::Manage>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    Problem::deleted(state.preferences.delete_category(caller.app_id(), &name).await?, "category")
}
