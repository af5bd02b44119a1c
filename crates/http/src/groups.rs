//! `/v1/groups`: named sets of users, with membership changed many at once.

use super::AppState;
use super::auth::{Scoped, scopes};
use super::json::Body;
use super::problem::{ApiResult, Problem};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{SubsecRound, Utc};
use herald_core::domain::{Group, check_caller_id};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// User ids in one membership change at most.
pub const MAX_MEMBER_CHANGES: usize = 10_000;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutGroup {
    pub name: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MembershipChange {
    pub added: usize,
    pub removed: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupList {
    pub data: Vec<Group>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberPage {
    pub data: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    pub cursor: Option<String>,
    pub limit: Option<usize>,
}

fn validate_id(field: &str, id: &str) -> Result<(), Problem> {
    check_caller_id(id).map_err(|message| Problem::field(field, message))
}

#[utoipa::path(put, path = "/v1/groups/{id}", tag = "groups", params(("id" = String, Path)),
    request_body = PutGroup,
    responses((status = 201, body = Group), (status = 200, body = Group), (status = 422, body = Problem)),
    security(("api_key" = ["manage"])))]
pub async fn put(
    State(state): State<AppState>,
    caller: Scoped<scopes::Manage>,
    Path(id): Path<String>,
    Body(request): Body<PutGroup>,
) -> ApiResult<(StatusCode, Json<Group>)> {
    validate_id("id", &id)?;
    if request.name.trim().is_empty() || request.name.len() > 100 {
        return Err(Problem::field("name", "1 to 100 characters"));
    }
    let now = Utc::now().trunc_subsecs(3);
    let group = Group {
        id: id.clone(),
        app_id: caller.app_id().to_owned(),
        name: request.name.trim().to_owned(),
        created_at: now,
        updated_at: now,
    };
    let created = state.groups.put_group(&group).await?;
    let stored = state.groups.group(caller.app_id(), &id).await?.unwrap_or(group);
    Ok(Problem::upserted(created, stored))
}

#[utoipa::path(get, path = "/v1/groups/{id}", tag = "groups", params(("id" = String, Path)),
    responses((status = 200, body = Group), (status = 404, body = Problem)), security(("api_key" = ["read"])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Scoped<scopes::Read>,
    Path(id): Path<String>,
) -> ApiResult<Json<Group>> {
    Problem::found(state.groups.group(caller.app_id(), &id).await?, "group")
}

#[utoipa::path(get, path = "/v1/groups", tag = "groups",
    responses((status = 200, body = GroupList)), security(("api_key" = ["read"])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Scoped<scopes::Read>,
) -> ApiResult<Json<GroupList>> {
    Ok(Json(GroupList { data: state.groups.list_groups(caller.app_id()).await? }))
}

#[utoipa::path(delete, path = "/v1/groups/{id}", tag = "groups", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("api_key" = ["manage"])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Scoped<scopes::Manage>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    Problem::deleted(state.groups.delete_group(caller.app_id(), &id).await?, "group")
}

/// Adds and removes members in one request. Members are user ids; a user may be
/// created later (dispatch resolves members to users when it sends).
#[utoipa::path(post, path = "/v1/groups/{id}/members", tag = "groups", params(("id" = String, Path)),
    request_body = Membership,
    responses((status = 200, body = MembershipChange), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = ["manage"])))]
pub async fn change_members(
    State(state): State<AppState>,
    caller: Scoped<scopes::Manage>,
    Path(id): Path<String>,
    Body(request): Body<Membership>,
) -> ApiResult<Json<MembershipChange>> {
    if request.add.len() + request.remove.len() > MAX_MEMBER_CHANGES {
        return Err(Problem::field("add", format!("at most {MAX_MEMBER_CHANGES} ids per request")));
    }
    for (field, ids) in [("add", &request.add), ("remove", &request.remove)] {
        for (i, user) in ids.iter().enumerate() {
            validate_id(&format!("{field}[{i}]"), user)?;
        }
    }
    let app = caller.app_id();
    if state.groups.group(app, &id).await?.is_none() {
        return Err(Problem::not_found("group"));
    }
    let added = state.groups.add_members(app, &id, &request.add).await?;
    let removed = state.groups.remove_members(app, &id, &request.remove).await?;
    Ok(Json(MembershipChange { added, removed }))
}

#[utoipa::path(get, path = "/v1/groups/{id}/members", tag = "groups",
    params(("id" = String, Path), ("limit" = Option<usize>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = MemberPage), (status = 404, body = Problem)), security(("api_key" = ["read"])))]
pub async fn members(
    State(state): State<AppState>,
    caller: Scoped<scopes::Read>,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> ApiResult<Json<MemberPage>> {
    let limit = query.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(Problem::field("limit", "1 to 10000"));
    }
    if state.groups.group(caller.app_id(), &id).await?.is_none() {
        return Err(Problem::not_found("group"));
    }
    let data = state.groups.members(caller.app_id(), &id, query.cursor.as_deref(), limit).await?;
    let next_cursor = (data.len() == limit).then(|| data.last().cloned()).flatten();
    Ok(Json(MemberPage { data, next_cursor }))
}

/// The groups a user is in.
#[utoipa::path(get, path = "/v1/users/{id}/groups", tag = "groups", params(("id" = String, Path)),
    responses((status = 200, body = Vec<String>), (status = 404, body = Problem)), security(("api_key" = ["read"])))]
pub async fn of_user(
    State(state): State<AppState>,
    caller: Scoped<scopes::Read>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<String>>> {
    check_caller_id(&id).map_err(|message| Problem::field("id", message))?;
    // Members need not be users yet; an id that is neither is unknown.
    let groups = state.groups.groups_of(caller.app_id(), &id).await?;
    if groups.is_empty() && state.users.user(caller.app_id(), &id).await?.is_none() {
        return Err(Problem::not_found("user or member"));
    }
    Ok(Json(groups))
}
