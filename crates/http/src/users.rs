//! `/v1/users`: the caller's users, by their own ids, with identities validated on
//! write; a bulk upsert takes thousands at once and answers per item.

use super::AppState;
use super::auth::{Scoped, scopes};
use super::json::{Body, from_value};
use super::problem::{ApiResult, FieldError, Problem};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{SubsecRound, Utc};
use herald_core::domain::{User, UserProfile, validate_user};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// Users in one bulk request at most.
pub const MAX_BULK_USERS: usize = 10_000;
/// The body of a bulk request at most: 10,000 profiles of about 1.5 KiB.
pub const MAX_BULK_BODY_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    pub data: Vec<User>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Bulk {
    #[schema(value_type = Vec<Object>)]
    pub users: Vec<Value>,
}

#[derive(Debug, Serialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ItemStatus {
    Created,
    Updated,
    Invalid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemResult {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub status: ItemStatus,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResult {
    pub created: usize,
    pub updated: usize,
    pub invalid: usize,
    pub results: Vec<ItemResult>,
}

fn checked(app: &str, id: &str, profile: UserProfile) -> Result<User, Vec<FieldError>> {
    let errors = validate_user(id, &profile);
    if !errors.is_empty() {
        return Err(errors
            .into_iter()
            .map(|(field, message)| FieldError { field, message })
            .collect());
    }
    let now = Utc::now().trunc_subsecs(3);
    Ok(User {
        id: id.to_owned(),
        app_id: app.to_owned(),
        profile,
        preferences: Default::default(),
        preferences_revision: 0,
        created_at: now,
        updated_at: now,
    })
}

#[utoipa::path(put, path = "/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    request_body = UserProfile,
    responses((status = 201, body = User, description = "Created"), (status = 200, body = User, description = "Replaced"),
        (status = 422, body = Problem)), security(("api_key" = ["manage"])))]
pub async fn put(
    State(state): State<AppState>,
    caller: Scoped<scopes::Manage>,
    Path(id): Path<String>,
    Body(profile): Body<UserProfile>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let user = checked(caller.app_id(), &id, profile).map_err(Problem::invalid)?;
    let created = state.users.upsert_users(std::slice::from_ref(&user)).await?[0];
    let stored = state.users.user(caller.app_id(), &id).await?.unwrap_or(user);
    Ok(Problem::upserted(created, stored))
}

#[utoipa::path(get, path = "/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 200, body = User), (status = 404, body = Problem)), security(("api_key" = ["read"])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Scoped<scopes::Read>,
    Path(id): Path<String>,
) -> ApiResult<Json<User>> {
    Problem::found(state.users.user(caller.app_id(), &id).await?, "user")
}

#[utoipa::path(delete, path = "/v1/users/{id}", tag = "users", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("api_key" = ["manage"])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Scoped<scopes::Manage>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    Problem::deleted(state.users.delete_user(caller.app_id(), &id).await?, "user")
}

#[utoipa::path(get, path = "/v1/users", tag = "users",
    params(("limit" = Option<usize>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = UserPage), (status = 422, body = Problem)), security(("api_key" = ["read"])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Scoped<scopes::Read>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<UserPage>> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::field("limit", "1 to 1000"));
    }
    let data = state.users.list_users(caller.app_id(), query.cursor.as_deref(), limit).await?;
    let next_cursor = (data.len() == limit).then(|| data.last().map(|u| u.id.clone())).flatten();
    Ok(Json(UserPage { data, next_cursor }))
}

/// One bulk item: an object with `id` and the profile fields.
fn bulk_item(app: &str, index: usize, item: Value) -> Result<User, ItemResult> {
    let invalid = |id: Option<String>, errors: Vec<FieldError>| ItemResult {
        index,
        id,
        status: ItemStatus::Invalid,
        errors: errors
            .into_iter()
            .map(|e| FieldError { field: format!("users[{index}].{}", e.field), ..e })
            .collect(),
    };
    let Value::Object(mut fields) = item else {
        return Err(invalid(
            None,
            vec![FieldError { field: "(item)".into(), message: "an object".into() }],
        ));
    };
    let id = match fields.remove("id") {
        Some(Value::String(id)) => id,
        _ => {
            return Err(invalid(
                None,
                vec![FieldError { field: "id".into(), message: "a string id is required".into() }],
            ));
        }
    };
    let profile: UserProfile =
        from_value(Value::Object(fields)).map_err(|p| invalid(Some(id.clone()), p.errors))?;
    checked(app, &id, profile).map_err(|errors| invalid(Some(id.clone()), errors))
}

#[utoipa::path(post, path = "/v1/users/bulk", tag = "users", request_body = Bulk,
    responses((status = 200, body = BulkResult, description = "Per-item results"), (status = 422, body = Problem)),
    security(("api_key" = ["manage"])))]
pub async fn bulk(
    State(state): State<AppState>,
    caller: Scoped<scopes::Manage>,
    Body(request): Body<Bulk>,
) -> ApiResult<Json<BulkResult>> {
    if request.users.is_empty() || request.users.len() > MAX_BULK_USERS {
        return Err(Problem::field("users", format!("1 to {MAX_BULK_USERS} users")));
    }
    // A malformed item is the request's error; a profile that fails its checks is the
    // item's (reported in `results`).
    if let Some(index) = request.users.iter().position(|item| !item.is_object()) {
        return Err(Problem::field(&format!("users[{index}]"), "a user object"));
    }
    let mut results = Vec::with_capacity(request.users.len());
    let mut valid = Vec::new();
    let mut positions = Vec::new();
    for (index, item) in request.users.into_iter().enumerate() {
        match bulk_item(caller.app_id(), index, item) {
            Ok(user) => {
                positions.push(results.len());
                results.push(ItemResult {
                    index,
                    id: Some(user.id.clone()),
                    status: ItemStatus::Updated,
                    errors: Vec::new(),
                });
                valid.push(user);
            }
            Err(result) => results.push(result),
        }
    }
    let created = state.users.upsert_users(&valid).await?;
    for (position, was_created) in positions.into_iter().zip(created) {
        if was_created {
            results[position].status = ItemStatus::Created;
        }
    }
    let count = |status: ItemStatus| results.iter().filter(|r| r.status == status).count();
    Ok(Json(BulkResult {
        created: count(ItemStatus::Created),
        updated: count(ItemStatus::Updated),
        invalid: count(ItemStatus::Invalid),
        results,
    }))
}
