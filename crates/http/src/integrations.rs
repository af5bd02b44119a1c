//! `/v1/integrations`: an app's own providers. Secrets are write-only: they go to the
//! vault on the way in and only a hint of each comes back out.

use super::AppState;
use super::auth::{Scoped, scopes};
use super::json::Body;
use super::problem::{ApiResult, Problem};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{SubsecRound, Utc};
use herald_core::channels::{OutboundMessage, ProviderError};
use herald_core::domain::{Address, Channel, Content, DeliveryId, NotificationId};
use herald_core::domain::{Priority, Recipient};
use herald_core::integrations::catalog::{self, FieldError, ProviderSpec};
use herald_core::integrations::router::Route;
use herald_core::integrations::{
    Integration, IntegrationView, MAX_PER_APP, SecretValues, VaultError, WindowLimit, new_id,
    secret_hint,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// How often a write retries after another write to the app's integrations won.
const WRITE_TRIES: usize = 5;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateIntegration {
    pub channel: Channel,
    /// A provider id from `GET /v1/integration-providers`.
    #[schema(example = "smtp")]
    pub provider: String,
    /// Unique within the app.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub config: Map<String, Value>,
    /// Write-only: never returned.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub secrets: Map<String, Value>,
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Lower is tried first.
    #[serde(default)]
    pub priority: i32,
    #[serde(default)]
    pub rate_limit_per_second: Option<u32>,
    /// At most `max` sends in any window of `window_seconds`, shared by every sender
    /// (a chat robot's documented limit when left out).
    #[serde(default)]
    pub window_limit: Option<WindowLimit>,
}

fn enabled() -> bool {
    true
}

/// Fields left out stay as they are. `config` is replaced whole; `secrets` are merged
/// by name (a field set to null is removed).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateIntegration {
    #[schema(min_length = 1, max_length = 100)]
    pub name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub config: Option<Map<String, Value>>,
    #[schema(value_type = Option<Object>)]
    pub secrets: Option<Map<String, Value>>,
    pub enabled: Option<bool>,
    pub priority: Option<i32>,
    /// 0 removes the limit.
    pub rate_limit_per_second: Option<u32>,
    /// Replaces the window limit.
    pub window_limit: Option<WindowLimit>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IntegrationList {
    pub data: Vec<IntegrationView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderList {
    pub data: Vec<ProviderSpec>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestSend {
    /// An address on the integration's channel, as in a notification's `to`.
    #[serde(deserialize_with = "herald_core::objects::object")]
    pub to: Recipient,
    /// What to send; a short test message on the channel by default.
    #[serde(default, deserialize_with = "herald_core::objects::optional_object")]
    pub content: Option<Content>,
}

/// What the provider answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderResult {
    pub ok: bool,
    pub provider: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_message_id: Option<String>,
    /// `transient`, `credentials_expired`, `invalid_address`, `permanent` or
    /// `unavailable`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_class: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ProviderResult {
    fn succeeded(provider: String, provider_message_id: Option<String>) -> Self {
        Self { ok: true, provider, provider_message_id, error_class: None, error: None }
    }

    fn failed(provider: String, error: &ProviderError) -> Self {
        let class = match error {
            ProviderError::Transient { .. } => "transient",
            ProviderError::CredentialsExpired(_) => "credentials_expired",
            ProviderError::InvalidAddress(_) => "invalid_address",
            ProviderError::Permanent(_) => "permanent",
            ProviderError::Unavailable(_) => "unavailable",
        };
        Self {
            ok: false,
            provider,
            provider_message_id: None,
            error_class: Some(class),
            error: Some(error.to_string()),
        }
    }
}

fn vault_problem(error: VaultError) -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "secrets-unavailable",
        "Secrets unavailable",
        error.to_string(),
    )
}

fn check_window(window: Option<&WindowLimit>) -> Result<(), Problem> {
    match window.map(WindowLimit::check) {
        Some(Err(message)) => {
            Err(field_problem(FieldError { path: "window_limit".into(), message }))
        }
        _ => Ok(()),
    }
}

fn field_problem(error: FieldError) -> Problem {
    Problem::field(&error.path, error.message)
}

fn check_name(name: &str) -> Result<String, Problem> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Problem::field("name", "1 to 100 characters, no control characters"));
    }
    Ok(name.to_owned())
}

fn spec_for(provider: &str, channel: Channel) -> Result<&'static ProviderSpec, Problem> {
    let spec = catalog::spec(provider).ok_or_else(|| {
        let known: Vec<&str> = catalog::providers().map(|p| p.id).collect();
        Problem::field("provider", format!("unknown provider (known: {})", known.join(", ")))
    })?;
    if !spec.serves(channel) {
        return Err(Problem::field("provider", format!("'{provider}' does not send {channel}")));
    }
    Ok(spec)
}

/// Hosts an app's manager may point an integration at pass the same network checks as
/// webhook URLs.
fn check_host(config: &Map<String, Value>) -> Result<(), Problem> {
    if let Some(host) = config.get("host").and_then(Value::as_str) {
        // Parsed as an http URL so that a literal address is read as one.
        if !herald_core::net::permits_url(&format!("http://{host}/")) {
            return Err(Problem::field("config.host", herald_core::net::REFUSED));
        }
    }
    Ok(())
}

/// The secret values as strings (every secret field is text).
fn secret_values(secrets: &Map<String, Value>) -> Result<SecretValues, Problem> {
    let mut values = SecretValues::new();
    for (name, value) in secrets {
        match value {
            Value::String(text) => {
                values.insert(name.clone(), text.clone());
            }
            Value::Null => {}
            _ => return Err(Problem::field(&format!("secrets.{name}"), "must be a string")),
        }
    }
    Ok(values)
}

fn hints(secrets: &SecretValues) -> BTreeMap<String, String> {
    secrets.iter().map(|(name, value)| (name.clone(), secret_hint(value))).collect()
}

/// Reads the app's set, lets `change` edit its items, and writes it back if nobody
/// wrote in between (retrying a few times if somebody did).
async fn modify<T, F, Fut>(state: &AppState, app: &str, mut change: F) -> ApiResult<T>
where
    F: FnMut(Vec<Integration>) -> Fut,
    Fut: std::future::Future<Output = ApiResult<(Vec<Integration>, T)>>,
{
    for _ in 0..WRITE_TRIES {
        let set = state.integrations.integrations(app).await?;
        let (items, result) = change(set.items).await?;
        if state.integrations.replace_integrations(app, &items, set.revision).await? {
            state.router.forget(app);
            return Ok(result);
        }
    }
    Err(Problem::conflict("busy", "the app's integrations changed too often; try again"))
}

#[utoipa::path(post, path = "/v1/integrations", tag = "integrations",
    request_body = CreateIntegration,
    responses((status = 201, body = IntegrationView), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = ["manage"])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Scoped<scopes::Manage>,
    Body(request): Body<CreateIntegration>,
) -> ApiResult<(StatusCode, Json<IntegrationView>)> {
    let name = check_name(&request.name)?;
    let spec = spec_for(&request.provider, request.channel)?;
    catalog::check_fields("config", spec.config, &request.config, false).map_err(field_problem)?;
    catalog::check_fields("secrets", spec.secrets, &request.secrets, false)
        .map_err(field_problem)?;
    check_host(&request.config)?;
    check_window(request.window_limit.as_ref())?;
    let secrets = secret_values(&request.secrets)?;
    let app = caller.app_id().to_owned();
    let id = new_id();
    let sealed = state.router.vault().seal(&app, &id, &secrets).await.map_err(vault_problem)?;
    let now = Utc::now().trunc_subsecs(3);
    let integration = Integration {
        id,
        channel: request.channel,
        provider: spec.id.to_owned(),
        name,
        config: request.config,
        enabled: request.enabled,
        priority: request.priority,
        rate_limit_per_second: request.rate_limit_per_second.filter(|n| *n > 0),
        window_limit: request.window_limit,
        secret_hints: hints(&secrets),
        sealed,
        revision: 1,
        created_at: now,
        updated_at: now,
    };
    let created = modify(&state, &app, |mut items| {
        let integration = integration.clone();
        async move {
            if items.iter().any(|i| i.name == integration.name) {
                return Err(Problem::conflict(
                    "name-taken",
                    "the app has an integration of that name",
                ));
            }
            if items.len() >= MAX_PER_APP {
                return Err(Problem::field(
                    "name",
                    format!("an app has at most {MAX_PER_APP} integrations"),
                ));
            }
            items.push(integration.clone());
            Ok((items, integration))
        }
    })
    .await;
    if created.is_err() {
        // Leave no orphaned secret behind (a no-op on the local vault).
        let _ = state.router.vault().remove(&app, &integration.id).await;
    }
    Ok((StatusCode::CREATED, Json(IntegrationView::from(&created?))))
}

#[utoipa::path(get, path = "/v1/integrations", tag = "integrations",
    responses((status = 200, body = IntegrationList)), security(("api_key" = ["manage"])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Scoped<scopes::Manage>,
) -> ApiResult<Json<IntegrationList>> {
    let set = state.integrations.integrations(caller.app_id()).await?;
    let mut data: Vec<IntegrationView> = set.items.iter().map(IntegrationView::from).collect();
    data.sort_by(|a, b| {
        (a.channel, a.priority, a.created_at).cmp(&(b.channel, b.priority, b.created_at))
    });
    Ok(Json(IntegrationList { data }))
}

#[utoipa::path(get, path = "/v1/integrations/{id}", tag = "integrations", params(("id" = String, Path)),
    responses((status = 200, body = IntegrationView), (status = 404, body = Problem)),
    security(("api_key" = ["manage"])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Scoped<scopes::Manage>,
    Path(id): Path<String>,
) -> ApiResult<Json<IntegrationView>> {
    let set = state.integrations.integrations(caller.app_id()).await?;
    Problem::found(set.get(&id).map(IntegrationView::from), "integration")
}

#[utoipa::path(patch, path = "/v1/integrations/{id}", tag = "integrations", params(("id" = String, Path)),
    request_body = UpdateIntegration,
    responses((status = 200, body = IntegrationView), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = ["manage"])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Scoped<scopes::Manage>,
    Path(id): Path<String>,
    Body(request): Body<UpdateIntegration>,
) -> ApiResult<Json<IntegrationView>> {
    let name = request.name.as_deref().map(check_name).transpose()?;
    if let Some(config) = &request.config {
        check_host(config)?;
    }
    let app = caller.app_id().to_owned();
    let request = &request;
    let updated = modify(&state, &app, |mut items| {
        let (name, state, app, id) = (name.clone(), state.clone(), app.clone(), id.clone());
        async move {
            let Some(at) = items.iter().position(|i| i.id == id) else {
                return Err(Problem::not_found("integration"));
            };
            if let Some(name) = &name
                && items.iter().any(|i| &i.name == name && i.id != id)
            {
                return Err(Problem::conflict(
                    "name-taken",
                    "the app has an integration of that name",
                ));
            }
            let mut integration = items[at].clone();
            let spec = spec_for(&integration.provider, integration.channel)?;
            if let Some(config) = &request.config {
                catalog::check_fields("config", spec.config, config, false)
                    .map_err(field_problem)?;
                integration.config = config.clone();
            }
            if let Some(changes) = &request.secrets {
                catalog::check_fields("secrets", spec.secrets, changes, true)
                    .map_err(field_problem)?;
                let vault = state.router.vault();
                let mut secrets =
                    vault.open(&app, &id, &integration.sealed).await.map_err(vault_problem)?;
                for (field, value) in changes {
                    match value {
                        Value::String(text) => secrets.insert(field.clone(), text.clone()),
                        _ => secrets.remove(field),
                    };
                }
                let merged: Map<String, Value> =
                    secrets.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
                catalog::check_fields("secrets", spec.secrets, &merged, false)
                    .map_err(field_problem)?;
                integration.sealed =
                    vault.seal(&app, &id, &secrets).await.map_err(vault_problem)?;
                integration.secret_hints = hints(&secrets);
            }
            integration.name = name.unwrap_or(integration.name);
            integration.enabled = request.enabled.unwrap_or(integration.enabled);
            integration.priority = request.priority.unwrap_or(integration.priority);
            if let Some(limit) = request.rate_limit_per_second {
                integration.rate_limit_per_second = (limit > 0).then_some(limit);
            }
            check_window(request.window_limit.as_ref())?;
            if let Some(window) = request.window_limit {
                integration.window_limit = Some(window);
            }
            integration.revision += 1;
            integration.updated_at = Utc::now().trunc_subsecs(3);
            items[at] = integration.clone();
            Ok((items, integration))
        }
    })
    .await?;
    Ok(Json(IntegrationView::from(&updated)))
}

#[utoipa::path(delete, path = "/v1/integrations/{id}", tag = "integrations", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = Problem)), security(("api_key" = ["manage"])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Scoped<scopes::Manage>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let app = caller.app_id().to_owned();
    modify(&state, &app, |mut items| {
        let id = id.clone();
        async move {
            let before = items.len();
            items.retain(|i| i.id != id);
            if items.len() == before {
                return Err(Problem::not_found("integration"));
            }
            Ok((items, ()))
        }
    })
    .await?;
    state.router.vault().remove(&app, &id).await.map_err(vault_problem)?;
    Ok(StatusCode::NO_CONTENT)
}

/// The app's integration `id` and the route that sends through it (enabled or not).
async fn route_of(state: &AppState, app: &str, id: &str) -> ApiResult<(Integration, Route)> {
    let set = state.integrations.integrations(app).await?;
    let integration = set.get(id).ok_or_else(|| Problem::not_found("integration"))?.clone();
    let route = state.router.route(app, &integration).await;
    Ok((integration, route))
}

/// Sends one message through the integration (enabled or not) and answers with what
/// the provider said. Nothing is stored: the message has no notification.
#[utoipa::path(post, path = "/v1/integrations/{id}/test", tag = "integrations", params(("id" = String, Path)),
    request_body = TestSend,
    responses((status = 200, body = ProviderResult), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("api_key" = ["manage"])))]
pub async fn test(
    State(state): State<AppState>,
    caller: Scoped<scopes::Manage>,
    Path(id): Path<String>,
    Body(request): Body<TestSend>,
) -> ApiResult<Json<ProviderResult>> {
    let app = caller.app_id();
    let (integration, route) = route_of(&state, app, &id).await?;
    let channel = integration.channel;
    let mut errors = super::validate::Errors::default();
    super::validate::recipients(&mut errors, std::slice::from_ref(&request.to), &state.limits);
    let address: Option<Address> = request.to.address_for(channel);
    let Some(address) = address.filter(|_| errors.0.is_empty()) else {
        errors.add("to", format!("give an address for the integration's channel ({channel})"));
        return Err(Problem::invalid(errors.0));
    };
    let content = request.content.unwrap_or_else(|| channel.test_content());
    if !content.has(channel) {
        return Err(Problem::field("content", format!("give content for {channel}")));
    }
    let provider = match &route.provider {
        Ok(provider) => provider.clone(),
        Err(why) => {
            let error = ProviderError::Unavailable(why.clone());
            return Ok(Json(ProviderResult::failed(route.provider_name(), &error)));
        }
    };
    let message = OutboundMessage {
        delivery_id: DeliveryId::new(),
        notification_id: NotificationId::for_app(app),
        app_id: app.to_owned(),
        priority: Priority::High,
        category: None,
        address,
        content,
        unsubscribe_url: None,
        metadata: None,
    };
    Ok(Json(match provider.send(&message).await {
        Ok(receipt) => {
            ProviderResult::succeeded(route.provider_name(), receipt.provider_message_id)
        }
        Err(error) => ProviderResult::failed(route.provider_name(), &error),
    }))
}

/// Asks the provider whether it can send now (SMTP: connect and NOOP), sending nothing.
#[utoipa::path(post, path = "/v1/integrations/{id}/check", tag = "integrations", params(("id" = String, Path)),
    responses((status = 200, body = ProviderResult), (status = 404, body = Problem)),
    security(("api_key" = ["manage"])))]
pub async fn check(
    State(state): State<AppState>,
    caller: Scoped<scopes::Manage>,
    Path(id): Path<String>,
) -> ApiResult<Json<ProviderResult>> {
    let (_, route) = route_of(&state, caller.app_id(), &id).await?;
    let result = match &route.provider {
        Ok(provider) => provider.check().await,
        Err(why) => Err(ProviderError::Unavailable(why.clone())),
    };
    Ok(Json(match result {
        Ok(()) => ProviderResult::succeeded(route.provider_name(), None),
        Err(error) => ProviderResult::failed(route.provider_name(), &error),
    }))
}

/// The providers an integration may name, with their fields.
#[utoipa::path(get, path = "/v1/integration-providers", tag = "integrations",
    responses((status = 200, body = ProviderList)), security(("api_key" = ["read"])))]
pub async fn providers(_caller: Scoped<scopes::Read>) -> Json<ProviderList> {
    Json(ProviderList { data: catalog::providers().copied().collect() })
}
