//! Admin endpoint that checks a tenant's mail settings by sending a test message through
//! its SMTP server.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use tenantry_admin::api::TestMail;
use tenantry_controlplane::model::{Language, MailTemplateKind};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;
use crate::web::{AdminAuth, ApiJson};
use tenantry_admin::Audit;
use tenantry_mail::{self as email, MailVars};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/admin/tenants/{slug}/email/test", post(send_test))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(send_test))]
pub struct Doc;

/// The test message the SMTP server accepted.
#[derive(Debug, Serialize, ToSchema)]
struct TestMailSent {
    to: String,
    language: Language,
}

/// Sends the `test` mail template (the tenant's override when it has one) to `to`.
#[utoipa::path(post, path = "/v1/admin/tenants/{slug}/email/test", tag = "tenants",
    params(("slug" = String, Path, description = "The tenant")),
    request_body = TestMail,
    responses(
        (status = 202, description = "The SMTP server accepted the message", body = TestMailSent),
        (status = 501, description = "The tenant has no SMTP settings (`settings.smtp`)"),
        (status = 502, description = "The mail server cannot be reached or did not accept the message"),
    ))]
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
    Ok((StatusCode::ACCEPTED, Json(TestMailSent { to: body.to, language })).into_response())
}
