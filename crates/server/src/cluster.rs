//! Cluster mode at the HTTP surface: where a follower answers an admin write with 307 to
//! the leader instead of forwarding it.

use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::state::AppState;

/// On a follower whose leader's API address is on `cluster.redirect_allowlist`: 307 to the
/// same path and query there (the method and body are kept by the client). Otherwise
/// `None`, and the write is forwarded through Raft as usual.
pub fn redirect_to_leader(state: &AppState, uri: &Uri) -> Option<Response> {
    let settings = state.config.cluster.as_ref()?;
    if settings.redirect_allowlist.is_empty() {
        return None;
    }
    let cluster = state.cluster.as_ref()?;
    let (leader_id, leader) = cluster.leader()?;
    if leader_id == cluster.id {
        return None;
    }
    let leader_api = leader.api_url.trim_end_matches('/');
    let allowed = settings
        .redirect_allowlist
        .iter()
        .any(|url| url.as_str().trim_end_matches('/') == leader_api);
    if !allowed {
        return None;
    }
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let location = HeaderValue::from_str(&format!("{leader_api}{path}")).ok()?;
    Some((StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, location)]).into_response())
}
