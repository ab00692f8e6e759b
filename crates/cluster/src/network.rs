//! Raft's outbound calls: JSON over HTTP to a member's cluster listener (over mutual TLS
//! when configured), each carrying the cluster secret and bounded by the deadline openraft
//! gives.

use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::types::{Member, NodeId, TypeConfig};

/// Paths of the Raft calls on the cluster listener.
pub const APPEND_PATH: &str = "/raft/append";
pub const VOTE_PATH: &str = "/raft/vote";
pub const SNAPSHOT_PATH: &str = "/raft/snapshot";

/// The HTTP client every outbound cluster call uses, with the secret it presents.
#[derive(Clone)]
pub struct PeerClient {
    http: reqwest::Client,
    secret: Arc<str>,
}

/// How long a connection attempt to a member may take before it counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

impl PeerClient {
    /// `bind` is the address outbound calls leave from: the cluster listener's own, when it
    /// names one, so members see one address per member. With `tls`, calls present this
    /// member's certificate and trust only the cluster's CA.
    pub fn new(secret: &str, bind: Option<std::net::IpAddr>, tls: Option<&crate::MutualTls>) -> Self {
        let mut builder = reqwest::Client::builder();
        if let Some(tls) = tls {
            builder = builder.tls_backend_preconfigured(tls.client.clone()).https_only(true);
        }
        let http = builder
            .local_address(bind)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the cluster HTTP client builds");
        Self {
            http,
            secret: secret.into(),
        }
    }

    /// A POST of `body` as JSON to `{base}{path}`, authenticated.
    pub fn post(&self, base: &str, path: &str, body: &impl Serialize) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", base.trim_end_matches('/')))
            .bearer_auth(&*self.secret)
            .json(body)
    }

    pub fn request(&self, method: reqwest::Method, base: &str, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", base.trim_end_matches('/')))
            .bearer_auth(&*self.secret)
    }
}

/// Builds a [`Peer`] per member for openraft.
#[derive(Clone)]
pub struct Network {
    pub client: PeerClient,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Peer {
        Peer {
            target,
            url: node.cluster_url.clone(),
            client: self.client.clone(),
        }
    }
}

pub struct Peer {
    target: NodeId,
    url: String,
    client: PeerClient,
}

impl Peer {
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, Member, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let response = self
            .client
            .post(&self.url, path, request)
            .timeout(option.hard_ttl())
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    RPCError::Unreachable(Unreachable::new(&e))
                } else {
                    RPCError::Network(NetworkError::new(&e))
                }
            })?;
        if !response.status().is_success() {
            let status = std::io::Error::other(format!("member {} answered {}", self.target, response.status()));
            return Err(RPCError::Network(NetworkError::new(&status)));
        }
        let answer: Result<Resp, E> = response
            .json()
            .await
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        self.call(APPEND_PATH, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId, InstallSnapshotError>>>
    {
        self.call(SNAPSHOT_PATH, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        self.call(VOTE_PATH, &rpc, &option).await
    }

    fn backoff(&self) -> openraft::network::Backoff {
        // A member that is down is retried soon enough to rejoin quickly after a restart.
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(200)))
    }
}
