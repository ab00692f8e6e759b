//! Admin endpoint that checks a tenant's mail settings by sending a test message through
//! its SMTP server.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use tenantry_controlplane::model::{Language, MailTemplateKind};

use crate::error::ApiError;
use crate::state::AppState;
use crate::web::{AdminAuth, ApiJson};
use tenantry_admin::Audit;
use tenantry_mail::{self as email, MailVars};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/admin/tenants/{slug}/email/test", post(send_test))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestMail {
    to: String,
    /// Defaults to the tenant's `settings.language`.
    #[serde(default)]
    language: Option<Language>,
}

/// Sends the `test` template (the tenant's override when it has one) to `to`: 202 once the
/// SMTP server accepted it, 422 for a malformed address, 501 without `settings.smtp`, 502
/// when the server cannot be reached or does not accept it.
async fn send_test(
    admin: AdminAuth,
    State(state): State<AppState>,
    Path(slug): Path<String>,
    ApiJson(body): ApiJson<TestMail>,
) -> Result<Response, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    email::parse_recipient(&body.to)?;
    let language = body.language.unwrap_or(ctx.entry.tenant.settings.language);
    let vars = MailVars {
        user_email: body.to.clone(),
        link: None,
        expires_in: None,
    };
    let send = state
        .accounts
        .mailer
        .send(&state.secrets, &ctx, &body.to, MailTemplateKind::Test, language, &vars);
    let audit = Audit::new("send_test_email", Some(&slug))
        .with_details(serde_json::json!({"recipient_domain": email::recipient_domain(&body.to)}));
    state.admin.perform(admin.actor(), send, |_| audit).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({"to": body.to, "language": language})),
    )
        .into_response())
}
