//! The HTTP API, one axum `Router` served by `herald serve` and by the `api` Lambda.

pub mod auth;
mod batch;
mod callbacks;
mod duplicates;
mod groups;
pub mod guards;
mod integrations;
mod json;
mod keys;
mod notifications;
pub mod openapi;
mod preferences;
pub mod problem;
pub mod server;
mod system;
mod templates;
mod unsubscribe;
mod users;
pub mod validate;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use herald_core::integrations::IntegrationRouter;
use herald_core::ports::{
    GroupStore, IntegrationStore, PreferenceStore, Queue, Store, Stores, TemplateStore, UserStore,
};
use herald_core::templates::Renderer;
use herald_core::unsubscribe::UnsubscribeLinks;
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
pub use validate::Limits;

/// What the handlers share, behind one `Arc`: axum clones the state for every
/// extractor of every request, and one reference count costs less than one per field.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    /// The app's integrations and the installation's default providers (the log
    /// provider among them): for test sends, sealing secrets and `/v1/log-messages`.
    pub router: Arc<IntegrationRouter>,
    pub limits: Limits,
    pub keys: Arc<auth::KeyCache>,
    pub templates: Arc<dyn TemplateStore>,
    pub users: Arc<dyn UserStore>,
    pub groups: Arc<dyn GroupStore>,
    pub preferences: Arc<dyn PreferenceStore>,
    pub integrations: Arc<dyn IntegrationStore>,
    /// Compiled templates, shared by every request.
    pub renderer: Arc<Renderer>,
    pub links: Arc<UnsubscribeLinks>,
}

impl AppState {
    /// `renderer` and `links` are shared with the workers of the same process.
    pub fn new(
        stores: Stores,
        queue: Arc<dyn Queue>,
        router: Arc<IntegrationRouter>,
        limits: Limits,
        renderer: Arc<Renderer>,
        links: Arc<UnsubscribeLinks>,
    ) -> Self {
        let Stores { store, templates, users, groups, preferences, integrations } = stores;
        let keys = Arc::default();
        Self(Arc::new(Shared {
            store,
            queue,
            router,
            limits,
            keys,
            templates,
            users,
            groups,
            preferences,
            integrations,
            renderer,
            links,
        }))
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Herald", description = "One API for every notification channel."),
    paths(
        notifications::send, batch::send_batch, notifications::get, notifications::list,
        notifications::cancel, notifications::resend,
        keys::create, system::log_messages, system::dead_letters, system::healthz, system::readyz,
        users::put, users::get, users::delete, users::list, users::bulk,
        groups::put, groups::get, groups::list, groups::delete, groups::change_members,
        groups::members, groups::of_user,
        preferences::get, preferences::put, preferences::put_category, preferences::get_category,
        preferences::list_categories, preferences::delete_category,
        unsubscribe::confirm, unsubscribe::unsubscribe,
        templates::create, templates::list, templates::get, templates::get_version,
        templates::delete, templates::create_version, templates::rollback, templates::preview,
        integrations::create, integrations::list, integrations::get, integrations::update,
        integrations::delete, integrations::test, integrations::check, integrations::providers,
        callbacks::twilio_status, callbacks::wechat_verify, callbacks::wechat_push, callbacks::aliyun_reports,
        callbacks::tencent_reports,
    ),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.limits.max_body_bytes;
    Router::new()
        .route("/v1/notifications", post(notifications::send).get(notifications::list))
        .route(
            "/v1/notifications/batch",
            post(batch::send_batch).layer(DefaultBodyLimit::max(batch::MAX_BODY_BYTES)),
        )
        .route("/v1/notifications/{id}", get(notifications::get))
        .route("/v1/notifications/{id}/cancel", post(notifications::cancel))
        .route("/v1/notifications/{id}/resend", post(notifications::resend))
        .route("/v1/users", get(users::list))
        // Up to 10,000 full profiles: a larger body than any other request.
        .route(
            "/v1/users/bulk",
            post(users::bulk).layer(DefaultBodyLimit::max(users::MAX_BULK_BODY_BYTES)),
        )
        .route("/v1/users/{id}", put(users::put).get(users::get).delete(users::delete))
        .route("/v1/users/{id}/groups", get(groups::of_user))
        .route("/v1/users/{id}/preferences", get(preferences::get).put(preferences::put))
        .route("/v1/categories", get(preferences::list_categories))
        .route(
            "/v1/categories/{name}",
            put(preferences::put_category)
                .get(preferences::get_category)
                .delete(preferences::delete_category),
        )
        .route("/v1/unsubscribe/{token}", get(unsubscribe::confirm).post(unsubscribe::unsubscribe))
        .route("/v1/callbacks/twilio/{app}/{integration}", post(callbacks::twilio_status))
        .route("/v1/callbacks/aliyun_sms/{app}/{integration}", post(callbacks::aliyun_reports))
        .route("/v1/callbacks/tencent_sms/{app}/{integration}", post(callbacks::tencent_reports))
        .route(
            "/v1/callbacks/wechat/{app}/{integration}",
            get(callbacks::wechat_verify).post(callbacks::wechat_push),
        )
        .route("/v1/groups", get(groups::list))
        .route("/v1/groups/{id}", put(groups::put).get(groups::get).delete(groups::delete))
        .route(
            "/v1/groups/{id}/members",
            post(groups::change_members)
                .get(groups::members)
                .layer(DefaultBodyLimit::max(users::MAX_BULK_BODY_BYTES)),
        )
        .route("/v1/keys", post(keys::create))
        .route("/v1/templates", post(templates::create).get(templates::list))
        .route("/v1/templates/{id}", get(templates::get).delete(templates::delete))
        .route("/v1/templates/{id}/versions", post(templates::create_version))
        .route("/v1/templates/{id}/versions/{version}", get(templates::get_version))
        .route("/v1/templates/{id}/rollback", post(templates::rollback))
        .route("/v1/templates/{id}/preview", post(templates::preview))
        .route("/v1/integrations", post(integrations::create).get(integrations::list))
        .route(
            "/v1/integrations/{id}",
            get(integrations::get).patch(integrations::update).delete(integrations::delete),
        )
        .route("/v1/integrations/{id}/test", post(integrations::test))
        .route("/v1/integrations/{id}/check", post(integrations::check))
        .route("/v1/integration-providers", get(integrations::providers))
        .route("/v1/log-messages", get(system::log_messages))
        .route("/v1/dead-letters", get(system::dead_letters))
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route("/openapi.json", get(system::openapi))
        .fallback(system::not_found)
        .method_not_allowed_fallback(system::method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(guards::errors_as_problems))
        .layer(axum::middleware::from_fn(guards::limit_request_head))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::ApiDoc;
    use utoipa::OpenApi;

    /// Every route the router serves (read from this file) is in the OpenAPI document,
    /// with the same methods.
    #[test]
    fn the_openapi_document_describes_every_route() {
        let source = include_str!("lib.rs");
        let start = source.find("pub fn router").expect("the router");
        let router = &source[start..start + source[start..].find("\n}\n").expect("its end")];
        let doc = ApiDoc::openapi();
        let mut missing = Vec::new();
        for chunk in router.split(".route(").skip(1) {
            let path = chunk.split('"').nth(1).expect("a path literal");
            if path == "/openapi.json" {
                continue;
            }
            let documented = doc.paths.paths.get(path);
            for method in ["get", "post", "put", "patch", "delete"] {
                let served = chunk.contains(&format!(" {method}("))
                    || chunk.contains(&format!("({method}("))
                    || chunk.contains(&format!(".{method}("));
                let has = documented.is_some_and(|item| match method {
                    "get" => item.get.is_some(),
                    "post" => item.post.is_some(),
                    "put" => item.put.is_some(),
                    "patch" => item.patch.is_some(),
                    _ => item.delete.is_some(),
                });
                if served && !has {
                    missing.push(format!("{} {path}", method.to_uppercase()));
                }
            }
        }
        assert!(missing.is_empty(), "not in /openapi.json: {missing:?}");
    }
}
