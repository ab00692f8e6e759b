//! `tenantry cluster …`: membership of a Raft cluster, through this node's cluster
//! listener. Each command reads the node's configuration (the same file and `TENANTRY_*`
//! environment as `tenantry serve`) for the listener's address, the cluster secret and,
//! under mutual TLS, the member certificate it presents.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde_json::{Value, json};
use tenantry_server::{Config, Overrides};

use crate::table::Output;

#[derive(clap::Args)]
pub struct ClusterArgs {
    /// This node's cluster listener (default: `cluster.advertise_url` of the configuration).
    #[arg(long, global = true, value_name = "URL")]
    node: Option<String>,
    /// Configuration file (TOML). Default: ./tenantry.toml when present.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// How answers are shown: a table, or JSON (env TENANTRY_OUTPUT).
    #[arg(long, global = true, value_enum, env = "TENANTRY_OUTPUT", default_value_t = Output::Table)]
    output: Output,
}

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Make this node a one-member cluster whose state is its current control plane (run
    /// once, on the first node; `tenantry init` may prepare that node before).
    Init,
    /// Join the cluster that the member at URL (its cluster listener) belongs to. This
    /// node's control plane is replaced by the cluster's.
    Join {
        #[arg(value_name = "URL")]
        member: String,
    },
    /// Take this node out of its cluster.
    Leave,
    /// Remove another member by its node id.
    Remove {
        #[arg(value_name = "NODE_ID")]
        node_id: u64,
    },
    /// Members, roles, the leader, term, committed and applied index, lag per member.
    Status,
}

pub async fn run(args: ClusterArgs, command: ClusterCommand) -> anyhow::Result<()> {
    // With `--node` and `TENANTRY_CLUSTER_SECRET`, any member can be asked from anywhere;
    // otherwise this node's own configuration says where and with what.
    let from_env = std::env::var("TENANTRY_CLUSTER_SECRET").ok().filter(|s| !s.is_empty());
    let (node, secret, tls) = match (args.node.clone(), from_env) {
        (Some(node), Some(secret)) => {
            let env = |name: &str| std::env::var(name).ok();
            let tls = tenantry_config::ClusterTlsFiles::resolve(None, None, None, &env, &|key: &str| key.to_owned())
                .map_err(|e| anyhow::anyhow!("{}: {}", e.setting, e.problem))?;
            (node, secret, tls)
        }
        (node, _) => {
            let config = Config::load(&Overrides {
                config_file: args.config.clone(),
                ..Default::default()
            })?;
            let Some(cluster) = config.cluster else {
                bail!(
                    "this node is not configured for cluster mode: set `[cluster] node_id` (TENANTRY_CLUSTER_NODE_ID), \
                     or give --node with TENANTRY_CLUSTER_SECRET"
                );
            };
            let node = node.unwrap_or_else(|| cluster.advertise_url.as_str().trim_end_matches('/').to_owned());
            (node, cluster.secret, cluster.tls)
        }
    };
    let node = node.trim_end_matches('/').to_owned();
    // Joining waits for this node to catch up; the others answer at once.
    let timeout = match command {
        ClusterCommand::Join { .. } | ClusterCommand::Init => Duration::from_secs(180),
        _ => Duration::from_secs(30),
    };
    let mut http = reqwest::Client::builder().timeout(timeout);
    if let Some(files) = tls {
        let tls = tenantry_cluster::MutualTls::load(&files.cert, &files.key, &files.ca)?;
        http = http.tls_backend_preconfigured(tls.client).https_only(true);
    }
    let http = http.build()?;
    let call = |method: reqwest::Method, path: &str| http.request(method, format!("{node}{path}")).bearer_auth(&secret);
    let request = match &command {
        ClusterCommand::Init => call(reqwest::Method::POST, "/cluster/init"),
        ClusterCommand::Join { member } => {
            call(reqwest::Method::POST, "/cluster/join").json(&json!({"via": member.trim_end_matches('/')}))
        }
        ClusterCommand::Leave => call(reqwest::Method::POST, "/cluster/leave"),
        ClusterCommand::Remove { node_id } => call(reqwest::Method::DELETE, &format!("/cluster/members/{node_id}")),
        ClusterCommand::Status => call(reqwest::Method::GET, "/cluster/status"),
    };
    let response = request
        .send()
        .await
        .with_context(|| format!("reaching this node's cluster listener at {node} (is `tenantry serve` running?)"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let code = body["code"].as_str().unwrap_or("error");
        let message = body["message"].as_str().unwrap_or("no details");
        bail!("{code} ({status}): {message}");
    }
    print!("{}", crate::table::render(&body, args.output));
    if args.output == Output::Json {
        println!();
    }
    Ok(())
}
