//! The cluster listener: Raft's calls between members, forwarded writes, and the
//! membership operations `tenantry cluster` uses. Every call must carry the cluster secret
//! (`Authorization: Bearer …`), checked in constant time before the body is read.

use std::sync::Arc;

use axum::Json;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::{Deserialize, Serialize};
use tenantry_controlplane::Command;

use crate::network::{APPEND_PATH, SNAPSHOT_PATH, VOTE_PATH};
use crate::node::{Cluster, ClusterError, Status};
use crate::types::{Member, NodeId, TypeConfig};
use crate::writer::{ForwardReply, READ_INDEX_PATH, ReadIndex, WRITE_PATH};

pub const INIT_PATH: &str = "/cluster/init";
pub const STATUS_PATH: &str = "/cluster/status";
pub const MEMBERS_PATH: &str = "/cluster/members";
pub const JOIN_PATH: &str = "/cluster/join";
pub const LEAVE_PATH: &str = "/cluster/leave";
/// Set on a membership call one member passes to the leader, so it is never passed on twice.
const FORWARDED: &str = "x-tenantry-forwarded";
/// Raft batches and snapshot chunks stay far below this; it bounds what a caller with the
/// secret can make the node buffer.
const MAX_BODY: usize = 64 * 1024 * 1024;

/// A new member, as `tenantry cluster join` announces it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewMember {
    pub node_id: NodeId,
    #[serde(flatten)]
    pub member: Member,
}

/// Body of `POST /cluster/join`: the address of any member of the cluster to join.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinRequest {
    pub via: String,
}

pub fn router(cluster: Arc<Cluster>) -> axum::Router {
    let secret = cluster.secret.clone();
    axum::Router::new()
        .route(APPEND_PATH, post(append))
        .route(VOTE_PATH, post(vote))
        .route(SNAPSHOT_PATH, post(snapshot))
        .route(WRITE_PATH, post(forwarded_write))
        .route(READ_INDEX_PATH, post(read_index))
        .route(INIT_PATH, post(init))
        .route(STATUS_PATH, get(status))
        .route(MEMBERS_PATH, post(add_member))
        .route(&format!("{MEMBERS_PATH}/{{id}}"), delete(remove_member))
        .route(JOIN_PATH, post(join))
        .route(LEAVE_PATH, post(leave))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            let secret = secret.clone();
            async move { authenticate(&secret, req, next).await }
        }))
        .with_state(cluster)
}

async fn authenticate(secret: &str, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if tenantry_crypto::constant_time_eq(presented.as_bytes(), secret.as_bytes()) {
        next.run(req).await
    } else {
        metrics::counter!("cluster_rejected_calls_total").increment(1);
        ClusterError::new(401, "cluster_unauthorized", "the cluster secret is missing or wrong").into_response()
    }
}

impl IntoResponse for ClusterError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        response
    }
}

async fn append(State(cluster): State<Arc<Cluster>>, Json(rpc): Json<AppendEntriesRequest<TypeConfig>>) -> Response {
    if let Some(commit) = rpc.leader_commit {
        cluster.saw_leader_commit(commit.index);
    }
    Json(cluster.raft.append_entries(rpc).await).into_response()
}

async fn vote(State(cluster): State<Arc<Cluster>>, Json(rpc): Json<VoteRequest<NodeId>>) -> Response {
    Json(cluster.raft.vote(rpc).await).into_response()
}

async fn snapshot(
    State(cluster): State<Arc<Cluster>>,
    Json(rpc): Json<InstallSnapshotRequest<TypeConfig>>,
) -> Response {
    Json(cluster.raft.install_snapshot(rpc).await).into_response()
}

async fn forwarded_write(State(cluster): State<Arc<Cluster>>, Json(cmd): Json<Command>) -> Json<ForwardReply> {
    if !cluster.is_leader() {
        return Json(ForwardReply::NotLeader);
    }
    Json(cluster.propose(cmd).await)
}

async fn read_index(State(cluster): State<Arc<Cluster>>) -> Result<Json<ReadIndex>, ClusterError> {
    if !cluster.is_leader() {
        return Err(ClusterError::new(503, "not_leader", "this node is not the leader"));
    }
    let index = cluster.read_index().await.ok_or_else(ClusterError::no_leader)?;
    Ok(Json(ReadIndex { index }))
}

async fn init(State(cluster): State<Arc<Cluster>>) -> Result<Json<Status>, ClusterError> {
    cluster.initialize().await.map(Json)
}

async fn status(State(cluster): State<Arc<Cluster>>) -> Json<Status> {
    Json(cluster.status())
}

async fn add_member(
    State(cluster): State<Arc<Cluster>>,
    headers: axum::http::HeaderMap,
    Json(new): Json<NewMember>,
) -> Result<Json<Status>, ClusterError> {
    if cluster.is_leader() {
        return cluster.add_member(new.node_id, new.member).await.map(Json);
    }
    on_leader(&cluster, &headers, reqwest::Method::POST, MEMBERS_PATH, Some(&new)).await
}

async fn remove_member(
    State(cluster): State<Arc<Cluster>>,
    headers: axum::http::HeaderMap,
    Path(id): Path<NodeId>,
) -> Result<Json<Status>, ClusterError> {
    remove(&cluster, &headers, id).await
}

/// Removes member `id`: here on the leader, else through it.
async fn remove(cluster: &Cluster, headers: &axum::http::HeaderMap, id: NodeId) -> Result<Json<Status>, ClusterError> {
    if cluster.is_leader() {
        return cluster.remove_member(id).await.map(Json);
    }
    let path = format!("{MEMBERS_PATH}/{id}");
    on_leader::<()>(cluster, headers, reqwest::Method::DELETE, &path, None).await
}

/// Asks the member at `via` to add this node.
async fn join(
    State(cluster): State<Arc<Cluster>>,
    Json(request): Json<JoinRequest>,
) -> Result<Json<Status>, ClusterError> {
    let new = NewMember {
        node_id: cluster.id,
        member: cluster.me.clone(),
    };
    let response = cluster
        .client
        .post(&request.via, MEMBERS_PATH, &new)
        .timeout(std::time::Duration::from_secs(120))
        .send()
        .await
        .map_err(|e| ClusterError::new(502, "member_unreachable", format!("{}: {e}", request.via)))?;
    relay::<Status>(response).await?;
    Ok(Json(cluster.status()))
}

/// Asks the leader to remove this node.
async fn leave(
    State(cluster): State<Arc<Cluster>>,
    headers: axum::http::HeaderMap,
) -> Result<Json<Status>, ClusterError> {
    remove(&cluster, &headers, cluster.id).await
}

/// Passes a membership call to the leader, once.
async fn on_leader<B: Serialize>(
    cluster: &Cluster,
    headers: &axum::http::HeaderMap,
    method: reqwest::Method,
    path: &str,
    body: Option<&B>,
) -> Result<Json<Status>, ClusterError> {
    if headers.contains_key(FORWARDED) {
        return Err(ClusterError::new(503, "not_leader", "this node is not the leader"));
    }
    let (_, leader) = cluster.leader().ok_or_else(ClusterError::no_leader)?;
    let mut request = cluster
        .client
        .request(method, &leader.cluster_url, path)
        .header(FORWARDED, "1")
        .timeout(std::time::Duration::from_secs(120));
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request
        .send()
        .await
        .map_err(|e| ClusterError::new(502, "member_unreachable", format!("the leader: {e}")))?;
    relay(response).await.map(Json)
}

/// Reads another member's answer: its status on success, its error otherwise.
async fn relay<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> Result<T, ClusterError> {
    let status = response.status();
    if status.is_success() {
        return response
            .json()
            .await
            .map_err(|e| ClusterError::new(502, "member_unreachable", e.to_string()));
    }
    let mut error = response
        .json::<ClusterError>()
        .await
        .unwrap_or_else(|_| ClusterError::new(502, "member_unreachable", format!("answered {status}")));
    error.status = status.as_u16();
    Err(error)
}
