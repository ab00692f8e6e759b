//! Installation admins signing in (`/v1/admin/auth/...`, outside the admin gate: these
//! routes are how an admin gets a credential). The rules are `tenantry_admin::signin`'s;
//! here the request is read, the outcome recorded in the audit trail, and the answer given.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;
use tenantry_accounts::mfa::Enrolment;
use tenantry_admin::api::AdminRefreshBody;
use tenantry_admin::signin::{self, AdminTokens, Refused, SignIn, SignInEnv, SignedIn, TotpEnrolment};
use tenantry_admin::{Actor, Audit};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;
use crate::web::{ApiJson, ClientIp, RequestId};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/auth/login", post(login))
        .route("/v1/admin/auth/totp", post(enrol_totp))
        .route("/v1/admin/auth/refresh", post(refresh))
        .route("/v1/admin/auth/logout", post(logout))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(login, enrol_totp, refresh, logout))]
pub struct Doc;

fn env<'a>(
    state: &'a AppState,
    client_ip: Option<std::net::IpAddr>,
    issuer: &'a str,
) -> Result<SignInEnv<'a>, ApiError> {
    let snapshot = state.control_plane.snapshot();
    let keys = state.keystore.system(&snapshot.system_keys)?;
    Ok(SignInEnv {
        snapshot,
        writer: &*state.writer,
        secrets: &state.secrets,
        accounts: &state.accounts,
        keys,
        issuer,
        client_ip,
    })
}

/// Records a sign-in event for `admin_id` (the nil id when the email named no admin).
async fn record(
    state: &AppState,
    admin_id: Option<Uuid>,
    action: &'static str,
    details: serde_json::Value,
    (ip, request): (ClientIp, RequestId),
) {
    let who = admin_id.unwrap_or(Uuid::nil());
    let actor = Actor {
        admin_id: who,
        api_key: false,
        request_id: request.0,
    };
    let mut details = details;
    if let (Some(ip), serde_json::Value::Object(map)) = (ip.0, &mut details) {
        map.insert("ip".into(), json!(ip.to_string()));
    }
    state
        .admin
        .event(
            actor,
            Audit::new(action, None)
                .with_target(format!("admin:{who}"))
                .with_details(details),
        )
        .await;
}

async fn answer(
    state: &AppState,
    caller: (ClientIp, RequestId),
    outcome: Result<SignedIn, Refused>,
    action: &'static str,
) -> Response {
    match outcome {
        Ok(signed_in) => {
            let details = json!({ "changed": signed_in.changed });
            record(state, Some(signed_in.admin_id), action, details, caller).await;
            (
                [(axum::http::header::CACHE_CONTROL, "no-store")],
                Json(signed_in.tokens),
            )
                .into_response()
        }
        Err(refused) => {
            let details = json!({ "reason": refused.reason, "code": refused.error.code.as_str() });
            record(state, refused.admin_id, failed(action), details, caller).await;
            refused.error.into_response()
        }
    }
}

fn failed(action: &'static str) -> &'static str {
    match action {
        "admin_sign_in" => "admin_sign_in_failed",
        "admin_refresh" => "admin_refresh_failed",
        _ => "admin_totp_enrolment_failed",
    }
}

/// An admin access token (5 minutes) and a refresh token (rotating; the session ends 12
/// hours after sign-in), for the email, password and TOTP code (and a `new_password` when
/// the password is a one-time password).
#[utoipa::path(post, path = "/v1/admin/auth/login", tag = "admin-auth",
    request_body = SignIn,
    responses((status = 200, body = AdminTokens, headers(("Cache-Control" = String, description = "`no-store`")))))]
async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    request: RequestId,
    ApiJson(input): ApiJson<SignIn>,
) -> Response {
    let issuer = state.system_issuer();
    let env = match env(&state, ip.0, &issuer) {
        Ok(env) => env,
        Err(e) => return e.into_response(),
    };
    let outcome = signin::sign_in(&env, input).await;
    answer(&state, (ip, request), outcome, "admin_sign_in").await
}

/// The TOTP secret to add to an authenticator, for an admin who has none confirmed yet;
/// the next sign-in with a code from it confirms it.
#[utoipa::path(post, path = "/v1/admin/auth/totp", tag = "admin-auth",
    request_body = TotpEnrolment,
    responses((status = 200, body = Enrolment, headers(("Cache-Control" = String, description = "`no-store`")))))]
async fn enrol_totp(
    State(state): State<AppState>,
    ip: ClientIp,
    request: RequestId,
    ApiJson(input): ApiJson<TotpEnrolment>,
) -> Response {
    let issuer = state.system_issuer();
    let env = match env(&state, ip.0, &issuer) {
        Ok(env) => env,
        Err(e) => return e.into_response(),
    };
    match signin::enrol_totp(&env, input).await {
        Ok((admin_id, enrolment)) => {
            record(&state, Some(admin_id), "admin_totp_enrolment", json!({}), (ip, request)).await;
            ([(axum::http::header::CACHE_CONTROL, "no-store")], Json(enrolment)).into_response()
        }
        Err(refused) => {
            let details = json!({ "reason": refused.reason, "code": refused.error.code.as_str() });
            record(
                &state,
                refused.admin_id,
                "admin_totp_enrolment_failed",
                details,
                (ip, request),
            )
            .await;
            refused.error.into_response()
        }
    }
}

/// A new pair of tokens; the refresh token sent is spent (a replay ends the session).
#[utoipa::path(post, path = "/v1/admin/auth/refresh", tag = "admin-auth",
    request_body = AdminRefreshBody,
    responses((status = 200, body = AdminTokens, headers(("Cache-Control" = String, description = "`no-store`")))))]
async fn refresh(
    State(state): State<AppState>,
    ip: ClientIp,
    request: RequestId,
    ApiJson(body): ApiJson<AdminRefreshBody>,
) -> Response {
    let issuer = state.system_issuer();
    let env = match env(&state, ip.0, &issuer) {
        Ok(env) => env,
        Err(e) => return e.into_response(),
    };
    let outcome = signin::refresh(&env, &body.refresh_token).await;
    // Successful refreshes are routine; only failures (a replay above all) are recorded.
    match outcome {
        Ok(signed_in) => (
            [(axum::http::header::CACHE_CONTROL, "no-store")],
            Json(signed_in.tokens),
        )
            .into_response(),
        Err(refused) => answer(&state, (ip, request), Err(refused), "admin_refresh").await,
    }
}

/// Ends the session (and with it every access token it issued); 204 whether or not the
/// token was known (RFC 7009 style).
#[utoipa::path(post, path = "/v1/admin/auth/logout", tag = "admin-auth",
    request_body = AdminRefreshBody,
    responses((status = 204, description = "The session ended (or there was none)")))]
async fn logout(
    State(state): State<AppState>,
    ip: ClientIp,
    request: RequestId,
    ApiJson(body): ApiJson<AdminRefreshBody>,
) -> Result<StatusCode, ApiError> {
    let issuer = state.system_issuer();
    let env = env(&state, ip.0, &issuer)?;
    if let Some(admin_id) = signin::sign_out(&env, &body.refresh_token).await? {
        record(&state, Some(admin_id), "admin_sign_out", json!({}), (ip, request)).await;
    }
    Ok(StatusCode::NO_CONTENT)
}
