//! The admin API's gate: every `/v1/admin` route runs behind [`gate`], which
//! authenticates the bearer credential (an admin token or an API key), reads which tenant
//! the route names (`{slug}`) and whether the method writes, and lets the request through
//! only when `tenantry_admin::access::Principal::permits` says so. A refusal is 403
//! `forbidden` and is recorded in the audit trail. A permitted route for one tenant then
//! counts against that tenant's `admin_api` request quota. Handlers take the accepted
//! [`AdminAuth`] from the request.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, MatchedPath, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::json;
use tenantry_accounts::quotas::Endpoint;
use tenantry_admin::access::{self, Needs, Principal, Target};
use tenantry_admin::{Actor, Audit};
use tenantry_controlplane::Command;
use tenantry_controlplane::model::ApiKey;

use super::bearer::{Bearer, challenge};
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

const REALM: Option<&str> = Some("tenantry-admin");

/// Routes without `{slug}` whose handlers narrow what they show or change to the
/// principal's reach (the tenant list; API keys and admins, which the handlers keep
/// within reach; the caller's own record; the audit list, read for a tenant in reach);
/// every other route without `{slug}` needs a global credential.
fn within_reach(method: &Method, route: &str) -> bool {
    let reads = matches!(*method, Method::GET | Method::HEAD);
    matches!(
        route,
        "/v1/admin/api-keys"
            | "/v1/admin/api-keys/{id}"
            | "/v1/admin/admins"
            | "/v1/admin/admins/{id}"
            | "/v1/admin/admins/{id}/reset-credentials"
            | "/v1/admin/me"
    ) || (reads && matches!(route, "/v1/admin/audit" | "/v1/admin/tenants"))
}

/// An authenticated admin credential the gate let through.
#[derive(Debug, Clone)]
pub struct AdminAuth(pub Principal);

impl AdminAuth {
    /// The record `id` of `records` (admins or API keys, by id) when its reach lies within
    /// the caller's; else 404 naming `kind`, so a record beyond reach cannot be told apart
    /// from one that does not exist.
    pub fn within_reach<'a, T>(
        &self,
        records: &'a std::collections::BTreeMap<uuid::Uuid, T>,
        reach_of: impl Fn(&T) -> &tenantry_controlplane::model::AdminReach,
        kind: &str,
        id: &str,
    ) -> Result<&'a T, ApiError> {
        uuid::Uuid::try_parse(id)
            .ok()
            .and_then(|id| records.get(&id))
            .filter(|record| self.0.reach.includes(reach_of(record)))
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::NotFound,
                    format!("no {kind} `{}`", crate::error::printable(id)),
                )
            })
    }

    /// The acting identity of an admin write (`tenantry_admin::AdminService`).
    pub fn actor(&self) -> Actor {
        self.0.actor.clone()
    }

    /// Records a refusal of this credential (403 `forbidden`) and answers it.
    pub async fn refuse(&self, state: &AppState, tenant: Option<&str>, what: &str, why: String) -> ApiError {
        let details = json!({ "request": what, "reason": &why });
        state
            .admin
            .event(self.actor(), Audit::new("forbidden", tenant).with_details(details))
            .await;
        ApiError::new(ErrorCode::Forbidden, why)
    }
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    /// The gate's verdict on admin routes; elsewhere (`/readyz` details) the credential
    /// is authenticated here.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(auth) = parts.extensions.get::<AdminAuth>() {
            return Ok(auth.clone());
        }
        authenticate(state, &parts.headers)
    }
}

/// The principal of the request's bearer credential; 401 with a `Bearer` challenge
/// otherwise. An API key's use is recorded (coarsely) in the background.
fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<AdminAuth, ApiError> {
    let Bearer(token) = Bearer::required(headers).map_err(|r| {
        r.into_problem(
            REALM,
            "send the admin token or API key as `Authorization: Bearer <token>`",
        )
    })?;
    let snapshot = state.control_plane.snapshot();
    let now = Utc::now();
    let verifiers = access::Verifiers {
        digest_key: || state.keystore.client_secret_key(&snapshot.system_secrets),
        system_issuer: || Ok((state.keystore.system(&snapshot.system_keys)?, state.system_issuer())),
    };
    match access::authenticate(&snapshot, &token, now, verifiers)? {
        Ok((mut principal, key)) => {
            principal.actor.request_id = request_id(headers);
            if let Some(key) = key
                && access::due_for_touch(key, now)
                && first_since(&TOUCHED, ApiKey::TOUCH_INTERVAL_SECS, key.id, now)
            {
                let (writer, id) = (state.writer.clone(), key.id);
                tokio::spawn(async move {
                    if let Err(e) = writer.write(Command::TouchApiKey { id, at: now }).await {
                        tracing::debug!(error = %e, "API key use not recorded");
                    }
                });
            }
            Ok(AdminAuth(principal))
        }
        Err(why) => {
            // A dead key whose secret matched is someone holding a real credential: the
            // attempt is recorded (once a minute per key). Unknown tokens are not (anyone
            // can send those).
            if let access::Unauthenticated::Expired(id) | access::Unauthenticated::Revoked(id) = why
                && first_since(&REFUSED, REFUSAL_RECORD_SECS, id, now)
            {
                let actor = Actor {
                    admin_id: id,
                    api_key: true,
                    request_id: request_id(headers),
                };
                let audit = Audit::new("api_key_refused", None)
                    .with_target(format!("api_key:{id}"))
                    .with_details(json!({ "reason": why.detail() }));
                let admin = state.admin.clone();
                tokio::spawn(async move { admin.event(actor, audit).await });
            }
            let mut e = ApiError::new(ErrorCode::Unauthorized, why.detail());
            e.challenge = Some(challenge(REALM, Some("invalid_token")));
            Err(e)
        }
    }
}

fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(crate::middleware::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Whether the decoded path or query of an admin request holds a control character. No
/// name, id or search text of the admin API has one, and a NUL is text PostgreSQL cannot
/// even hold: such a request is bad input, refused before any handler or database sees it.
fn has_control_characters(uri: &axum::http::Uri) -> bool {
    let decoded = url::form_urlencoded::parse(uri.path().as_bytes())
        .chain(url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()));
    decoded
        .flat_map(|(name, value)| [name, value])
        .any(|part| part.chars().any(char::is_control))
}

/// Tenant routes only a global credential may use: deleting a tenant (its lifecycle is
/// the installation's), and adopting a database stamped for another tenant (which would
/// hand one tenant's users to another's administrators).
fn installation_only(method: &Method, route: &str) -> bool {
    matches!(
        (method, route),
        (&Method::DELETE, "/v1/admin/tenants/{slug}") | (&Method::POST, "/v1/admin/tenants/{slug}/database/adopt")
    )
}

type LastRecorded = std::sync::LazyLock<std::sync::Mutex<HashMap<uuid::Uuid, i64>>>;
/// When this node last recorded a key's use, and a dead key's refusal.
static TOUCHED: LastRecorded = std::sync::LazyLock::new(Default::default);
static REFUSED: LastRecorded = std::sync::LazyLock::new(Default::default);
/// A dead key's refusals are recorded at most once a minute per key.
const REFUSAL_RECORD_SECS: i64 = 60;

/// Whether `id` had nothing recorded in `last` within `interval` seconds (and now has):
/// a burst of requests with one key writes one record, not one per request, so a holder
/// of a key cannot make this node write without bound.
fn first_since(last: &LastRecorded, interval: i64, id: uuid::Uuid, now: chrono::DateTime<Utc>) -> bool {
    let mut recorded = last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if recorded.get(&id).is_some_and(|at| now.timestamp() - at < interval) {
        return false;
    }
    if recorded.len() >= 10_000 {
        recorded.clear();
    }
    recorded.insert(id, now.timestamp());
    true
}

/// The route layer of every admin route (see the module doc).
pub async fn gate(
    State(state): State<AppState>,
    matched: MatchedPath,
    params: Result<Path<HashMap<String, String>>, axum::extract::rejection::PathRejection>,
    mut request: Request,
    next: Next,
) -> Response {
    let write = !matches!(*request.method(), Method::GET | Method::HEAD);
    if write && let Some(redirect) = crate::cluster::redirect_to_leader(&state, request.uri()) {
        return redirect;
    }
    let auth = match authenticate(&state, request.headers()) {
        Ok(auth) => auth,
        Err(e) => return e.into_response(),
    };
    if write {
        // Validate against every write committed before this one (cluster followers; a
        // call to the leader, so only for an authenticated caller).
        state.writer.catch_up().await;
    }
    if has_control_characters(request.uri()) {
        return ApiError::new(
            ErrorCode::BadRequest,
            "the path or query holds a control character (such as %00)",
        )
        .into_response();
    }
    let slug = params
        .as_ref()
        .ok()
        .and_then(|Path(p)| p.get("slug"))
        .map(String::as_str);
    let (method, route) = (request.method().clone(), matched.as_str());
    let target = match slug {
        _ if installation_only(&method, route) => Target::Installation,
        Some(slug) => Target::Tenant(slug),
        None if within_reach(&method, route) => Target::WithinReach,
        None => Target::Installation,
    };
    if let Err(why) = auth.0.permits(Needs { target, write }) {
        let what = format!("{} {}", request.method(), matched.as_str());
        return auth.refuse(&state, slug, &what, why).await.into_response();
    }
    request.extensions_mut().insert(auth);
    // A route for one tenant counts against that tenant's admin API quota.
    let tenant = match slug {
        Some(slug) if !installation_only(&method, route) => state.control_plane.snapshot().tenant(slug).cloned(),
        _ => None,
    };
    match tenant {
        Some(entry) => {
            let limiter = &state.accounts.rate_limiter;
            crate::web::quota::guard(limiter, &entry.tenant, Endpoint::AdminApi, request, next).await
        }
        None => next.run(request).await,
    }
}
