//! `/v1/keys`: an app's admin mints keys for its own app; the installation's operator
//! for any app, and only an operator grants `operator`.

use super::AppState;
use super::auth::{Scoped, scopes};
use super::json::Body;
use super::problem::{ApiResult, Problem};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use herald_core::auth::{Scope, mint_key, validate_app_id};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// The app the key is bound to; it sees only that app's data.
    pub app_id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    pub id: String,
    /// The secret: shown this once, stored only as a hash.
    pub key: String,
    pub app_id: String,
    pub scopes: Vec<Scope>,
}

/// Mint an API key.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = CreateKey,
    responses((status = 201, body = CreatedKey), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = ["admin"])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Scoped<scopes::Admin>,
    Body(request): Body<CreateKey>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    validate_app_id(&request.app_id).map_err(|m| Problem::field("app_id", m))?;
    if (request.app_id != caller.app_id() || request.scopes.contains(&Scope::Operator))
        && caller.require(Scope::Operator).is_err()
    {
        return Err(Problem::forbidden(
            "an app's admin key mints keys for its own app only, without 'operator'",
        ));
    }
    if request.name.trim().is_empty() || request.name.len() > 100 {
        return Err(Problem::field("name", "1 to 100 characters"));
    }
    if request.scopes.is_empty() {
        return Err(Problem::field("scopes", "give at least one scope"));
    }
    let minted = mint_key(&request.app_id, request.name.trim(), request.scopes);
    state.store.insert_api_key(&minted.record).await?;
    let record = minted.record;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            id: record.id,
            key: minted.secret,
            app_id: record.app_id,
            scopes: record.scopes,
        }),
    ))
}
