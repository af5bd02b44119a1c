//! `/v1/unsubscribe/{token}`: the one-click unsubscribe endpoint (RFC 8058). It takes
//! no API key: the token is signed and names the app, the user and the category. GET
//! shows a confirmation page and changes nothing (mail scanners follow links); POST,
//! from the mail client's one-click button or the page's form, unsubscribes. Repeating
//! it changes nothing more and answers the same.

use super::AppState;
use super::problem::{ApiResult, Problem};
use axum::extract::{Path, State};
use axum::response::Html;
use herald_core::domain::Channel;
use herald_core::ports::PreferencesWrite;
use herald_core::unsubscribe::Unsubscribe;

/// Read-modify-write rounds before giving up on a user whose preferences keep changing.
const ROUNDS: usize = 5;

fn gone() -> Problem {
    Problem::new(
        axum::http::StatusCode::GONE,
        "gone",
        "Link no longer valid",
        "the user this link was sent to no longer exists",
    )
}

/// Whether the link's user still exists as the same incarnation it was sent to.
async fn current_user(
    state: &AppState,
    what: &Unsubscribe,
) -> ApiResult<herald_core::domain::User> {
    match state.users.user(&what.app_id, &what.user_id).await? {
        Some(user) if user.created_at.timestamp_millis() == what.since => Ok(user),
        _ => Err(gone()),
    }
}

async fn verified(state: &AppState, token: &str) -> ApiResult<Unsubscribe> {
    state.links.verify(token).await?.ok_or_else(|| {
        Problem::forbidden("this unsubscribe link is not valid (it was changed or is not ours)")
    })
}

fn what_of(what: &Unsubscribe) -> String {
    match &what.category {
        Some(category) => format!("“{}” emails", escape(category)),
        None => "any messages except security and account ones".to_owned(),
    }
}

/// Categories are plain names and signed, but a page never prints text unescaped.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title></head>\
         <body style=\"font-family:system-ui;max-width:32rem;margin:4rem auto\">\
         <h1>{title}</h1>{body}</body></html>"
    ))
}

#[utoipa::path(get, path = "/v1/unsubscribe/{token}", tag = "preferences", params(("token" = String, Path)),
    responses((status = 200, content_type = "text/html", description = "A confirmation page; changes nothing"),
        (status = 403, body = Problem, description = "Not a link Herald signed"),
        (status = 410, body = Problem, description = "The user was deleted (or deleted and made again)")))]
pub async fn confirm(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<Html<String>> {
    let what = verified(&state, &token).await?;
    current_user(&state, &what).await?;
    Ok(page(
        "Unsubscribe?",
        &format!(
            "<p>Stop receiving {}?</p><form method=\"post\">\
             <input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
             <button type=\"submit\">Unsubscribe</button></form>",
            what_of(&what)
        ),
    ))
}

#[utoipa::path(post, path = "/v1/unsubscribe/{token}", tag = "preferences", params(("token" = String, Path)),
    request_body(content = String, content_type = "application/x-www-form-urlencoded", description = "List-Unsubscribe=One-Click (RFC 8058)"),
    responses((status = 200, content_type = "text/html", description = "Unsubscribed (the same on every repeat)"),
        (status = 403, body = Problem, description = "Not a link Herald signed"),
        (status = 410, body = Problem, description = "The user was deleted (or deleted and made again)")))]
pub async fn unsubscribe(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<Html<String>> {
    let what = verified(&state, &token).await?;
    if !apply(&state, &what).await? {
        return Err(Problem::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "Try again",
            "the preferences kept changing while we tried; please try again",
        )
        .retry_after(1));
    }
    Ok(page(
        "You are unsubscribed",
        &format!("<p>You will no longer receive {}.</p>", what_of(&what)),
    ))
}

/// Turns the link's category off for email (or everything off without one); false if
/// other writes kept racing it.
async fn apply(state: &AppState, what: &Unsubscribe) -> Result<bool, Problem> {
    for _ in 0..ROUNDS {
        let user = current_user(state, what).await?;
        let mut preferences = user.preferences.clone();
        match &what.category {
            Some(category) => {
                let choice = preferences.categories.entry(category.clone()).or_default();
                choice.channels.insert(Channel::Email, false);
            }
            None => preferences.unsubscribed = true,
        }
        if preferences == user.preferences {
            return Ok(true); // Already unsubscribed: the same answer again.
        }
        let revision = Some(user.preferences_revision);
        match state
            .preferences
            .put_preferences(&what.app_id, &what.user_id, &preferences, revision)
            .await?
        {
            PreferencesWrite::Saved { .. } => {
                tracing::info!(app = %what.app_id, user = %what.user_id, category = ?what.category, "unsubscribed");
                return Ok(true);
            }
            PreferencesWrite::NoUser => return Err(gone()),
            PreferencesWrite::Conflict => continue,
        }
    }
    Ok(false)
}
