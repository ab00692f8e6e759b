//! Admin endpoints for a tenant's upstream identity providers (federation): test a
//! provider's configuration against the live upstream, find the account an upstream
//! identity signs in to, and list an account's linked identities. The providers
//! themselves are part of the tenant's settings (`social_providers`).

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;
use tenantry_admin::users::existing;
use tenantry_dataplane::UserRepository;
use tenantry_dataplane::model::ExternalIdentity;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::web::AdminAuth;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/tenants/{slug}/providers/{id}/test", post(test_provider))
        .route(
            "/v1/admin/tenants/{slug}/identities/{provider}/{subject}",
            get(identity),
        )
        .route("/v1/admin/tenants/{slug}/users/{id}/identities", get(user_identities))
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(test_provider, identity, user_identities))]
pub struct Doc;

/// What the upstream's discovery document and JWKS said.
#[derive(Serialize, ToSchema)]
struct ProviderTest {
    /// The upstream answered and its documents are usable.
    ok: bool,
    /// The issuer, endpoints and key count read from the upstream.
    #[schema(value_type = Object)]
    upstream: Value,
}

/// An account's linked upstream identities.
#[derive(Serialize, ToSchema)]
struct IdentityList {
    identities: Vec<ExternalIdentity>,
}

/// Fetches the provider's discovery document and JWKS now (not from the cache; GitHub:
/// its API's root) under the installation's outbound policy, and says what is wrong: 502
/// `upstream_unavailable` with the reason (unreachable, refused address, unusable
/// document).
#[utoipa::path(post, path = "/v1/admin/tenants/{slug}/providers/{id}/test", tag = "tenants",
    params(("slug" = String, Path, description = "The tenant"),
        ("id" = String, Path, description = "The provider's id in `social_providers`")),
    responses(
        (status = 200, description = "The upstream's documents are usable", body = ProviderTest),
        (status = 404, description = "`upstream_unknown`: no provider with this id"),
        (status = 502, description = "`upstream_unavailable`: what is wrong"),
    ))]
async fn test_provider(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<ProviderTest>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let provider = ctx
        .entry
        .tenant
        .settings
        .social_providers
        .iter()
        .find(|p| p.id == id)
        .ok_or_else(|| ApiError::new(ErrorCode::UpstreamUnknown, "no provider with this id"))?;
    let upstream = state.upstreams.probe(provider).await?;
    Ok(Json(ProviderTest { ok: true, upstream }))
}

/// The upstream identity (provider, subject) and the account it signs in to.
#[utoipa::path(get, path = "/v1/admin/tenants/{slug}/identities/{provider}/{subject}", tag = "users",
    params(("slug" = String, Path, description = "The tenant"),
        ("provider" = String, Path, description = "The provider's id"),
        ("subject" = String, Path, description = "The user's `sub` at the provider")),
    responses(
        (status = 200, description = "The identity and its account (`user_id`)", body = ExternalIdentity),
        (status = 404, description = "No account has this identity"),
    ))]
async fn identity(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, provider, subject)): Path<(String, String, String)>,
) -> Result<Json<ExternalIdentity>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let db = ctx.db().await?;
    let identity = match db.identity(&provider, &subject).await {
        Ok(identity) => identity,
        // Longer than any stored value, or not storable: no account has it.
        Err(tenantry_dataplane::DbError::Invalid(_)) => None,
        Err(e) => return Err(e.into()),
    };
    identity
        .map(Json)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no account has this upstream identity"))
}

/// The upstream identities linked to a user.
#[utoipa::path(get, path = "/v1/admin/tenants/{slug}/users/{id}/identities", tag = "users",
    params(("slug" = String, Path, description = "The tenant"), ("id" = uuid::Uuid, Path, description = "The user")),
    responses(
        (status = 200, description = "The user's linked identities", body = IdentityList),
        (status = 404, description = "No such user"),
    ))]
async fn user_identities(
    _admin: AdminAuth,
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<Json<IdentityList>, ApiError> {
    let ctx = state.resolver.resolve_slug(&slug)?;
    let user = existing(&ctx, &id).await?;
    let identities = ctx.db().await?.identities_of(user.id).await?;
    Ok(Json(IdentityList { identities }))
}
