//! Members cut apart through TCP relays: a partitioned leader, a cut-off follower, a
//! snapshot install after the heal.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::*;

/// A TCP relay in front of one member's cluster listener that can refuse, and cut, the
/// connections of chosen source addresses (each member calls from its own loopback address).
struct Relay {
    addr: std::net::SocketAddr,
    blocked: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<std::net::IpAddr>>>,
    open: std::sync::Arc<std::sync::Mutex<Vec<(std::net::IpAddr, tokio::task::AbortHandle)>>>,
}

impl Relay {
    async fn start(target: std::net::SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay = Relay {
            addr: listener.local_addr().unwrap(),
            blocked: Default::default(),
            open: Default::default(),
        };
        let (blocked, open) = (relay.blocked.clone(), relay.open.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, peer)) = listener.accept().await {
                if blocked.lock().unwrap().contains(&peer.ip()) {
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                open.lock().unwrap().push((peer.ip(), task.abort_handle()));
            }
        });
        relay
    }

    /// Refuses new connections from `sources` and cuts theirs that are open.
    fn block(&self, sources: &[std::net::IpAddr]) {
        self.blocked.lock().unwrap().extend(sources);
        for (ip, task) in self.open.lock().unwrap().iter() {
            if sources.contains(ip) {
                task.abort();
            }
        }
    }

    fn heal(&self) {
        self.blocked.lock().unwrap().clear();
    }
}

/// Member `i`'s own loopback address: its listener and the source of its calls.
fn member_ip(i: usize) -> std::net::IpAddr {
    std::net::IpAddr::from([127, 0, 0, 11 + i as u8])
}

/// Cuts member `cut` off from the others (both ways), through the relays.
fn isolate(relays: &[Relay], cut: usize) {
    let others: Vec<_> = (0..relays.len()).filter(|i| *i != cut).map(member_ip).collect();
    relays[cut].block(&others);
    for (i, relay) in relays.iter().enumerate() {
        if i != cut {
            relay.block(&[member_ip(cut)]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_leader_acknowledges_nothing_and_a_cut_off_follower_still_serves_tokens() {
    let Some(redis) = tenantry_testkit::configured(tenantry_testkit::Service::Redis) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut relays = Vec::new();
    let mut addresses = Vec::new();
    for i in 0..3 {
        let listen = std::net::SocketAddr::new(member_ip(i), free_port());
        let relay = Relay::start(listen).await;
        addresses.push((listen, format!("http://{}", relay.addr)));
        relays.push(relay);
    }
    let (nodes, token) = three_members_at(
        dir.path(),
        &redis,
        &[("TENANTRY_CLUSTER_SNAPSHOT_EVERY", "20")],
        addresses,
    )
    .await;
    let (status, body) = create_tenant(&token, &nodes[1].api(), "served").await;
    assert_eq!(status, 201, "{body}");
    let backend =
        json!({"client_id": "backend", "name": "Backend", "grant_types": ["client_credentials"], "scopes": ["api"]});
    let (status, made) = admin_call(
        &token,
        &nodes[2].api(),
        Method::POST,
        "/v1/admin/tenants/served/clients",
        Some(backend),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let secret = made["client_secret"].as_str().unwrap().to_owned();

    // The leader is cut off: it acknowledges no write from then on.
    let leader = nodes[0].status().await.unwrap()["leader_id"].as_u64().unwrap() as usize - 1;
    isolate(&relays, leader);
    let (status, body) = create_tenant(&token, &nodes[leader].api(), "on-the-old-leader").await;
    assert_eq!(status, 503, "an isolated leader commits nothing: {body}");
    // The majority elects a new leader and takes writes.
    let majority: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let first = &nodes[majority[0]];
    eventually(Duration::from_secs(15), "a new leader in the majority", || async move {
        first
            .status()
            .await
            .is_some_and(|s| s["leader_id"].as_u64().is_some_and(|l| l as usize - 1 != leader))
    })
    .await;
    let (status, body) = create_tenant(&token, &nodes[majority[1]].api(), "on-the-majority").await;
    assert_eq!(status, 201, "{body}");

    // Healed: the old leader follows, drops what it never committed, and matches.
    for relay in &relays {
        relay.heal();
    }
    let target = first.status().await.unwrap()["applied_index"].as_u64().unwrap();
    let old = &nodes[leader];
    eventually(Duration::from_secs(20), "the old leader to catch up", || async move {
        old.status()
            .await
            .is_some_and(|s| s["applied_index"].as_u64().is_some_and(|a| a >= target) && s["role"] != "leader")
    })
    .await;
    let (status, _) = admin_call(
        &token,
        &old.api(),
        Method::GET,
        "/v1/admin/tenants/on-the-old-leader",
        None,
    )
    .await;
    assert_eq!(status, 404, "the uncommitted write is gone");
    let reference = tree_of(&nodes[majority[0]].fs_root);
    assert_eq!(tree_of(&old.fs_root), reference, "the old leader's tree matches");

    // A follower cut off from the leader reports `degraded` and still serves discovery,
    // JWKS, authorize and tokens.
    let leader = first.status().await.unwrap()["leader_id"].as_u64().unwrap() as usize - 1;
    let follower = (0..3).find(|i| *i != leader).unwrap();
    isolate(&relays, follower);
    let api = nodes[follower].api();
    eventually(
        Duration::from_secs(15),
        "the cut-off follower to report degraded",
        || {
            let api = api.clone();
            async move {
                let body: Value = reqwest::get(format!("{api}/readyz"))
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                body["status"] == "degraded" && body["components"]["cluster"]["status"] == "degraded"
            }
        },
    )
    .await;
    for path in ["/t/served/.well-known/openid-configuration", "/t/served/jwks.json"] {
        let response = reqwest::get(format!("{api}{path}")).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let (status, issued) = form(
        &format!("{api}/t/served/token"),
        Some(("backend", &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 200, "{issued}");
    let authorize = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!(
            "{api}/t/served/authorize?response_type=code&client_id=backend&redirect_uri=https%3A%2F%2Fapp.example%2Fcb"
        ))
        .send()
        .await
        .unwrap();
    assert!(
        authorize.status().as_u16() < 500,
        "authorize answers: {}",
        authorize.status()
    );
    // Writes there wait for a leader and then say so.
    let (status, body) = create_tenant(&token, &api, "while-cut-off").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "no_leader", "{body}");

    // Meanwhile the majority rotates the tenant's keys and the client's secret, and writes
    // past a snapshot and a purge: the cut-off member must install a snapshot, and every
    // cache it keeps (opened key rings, JWKS bodies, client secrets) must follow at once.
    let leader_api = nodes[leader].api();
    let (status, body) = admin_call(
        &token,
        &leader_api,
        Method::POST,
        "/v1/admin/tenants/served/keys/rotate",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, rotated) = admin_call(
        &token,
        &leader_api,
        Method::POST,
        "/v1/admin/tenants/served/clients/backend/secret",
        Some(json!({"overlap_secs": 0})),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
    for i in 0..60 {
        let (status, body) = create_tenant(&token, &leader_api, &format!("during-{i}")).await;
        assert_eq!(status, 201, "{body}");
    }
    let leader_status = nodes[leader].status().await.unwrap();
    let follower_applied = nodes[follower].status().await.unwrap()["applied_index"]
        .as_u64()
        .unwrap();
    assert!(
        leader_status["purged_index"].as_u64().unwrap() > follower_applied,
        "the cut-off member's next entries are purged: {leader_status}"
    );
    for relay in &relays {
        relay.heal();
    }
    // The cut-off member installs a snapshot and applies what the leader committed.
    all_caught_up(&nodes).await;
    let cut_off = &nodes[follower];
    let jwks = |api: String| async move {
        reqwest::get(format!("{api}/t/served/jwks.json"))
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    assert_eq!(
        jwks(api.clone()).await,
        jwks(leader_api.clone()).await,
        "the rotated JWKS at once"
    );
    let (status, body) = form(
        &format!("{api}/t/served/token"),
        Some(("backend", &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "the old secret: {body}"
    );
    let (status, issued) = form(
        &format!("{api}/t/served/token"),
        Some(("backend", &new_secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 200, "the new secret: {issued}");
    let kid = kid_of(issued["access_token"].as_str().unwrap());
    let leader_jwks = jwks(leader_api).await;
    assert!(
        leader_jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid.as_str())
    );
    assert_eq!(tree_of(&cut_off.fs_root), tree_of(&nodes[leader].fs_root));
}
