//! The leader SIGKILLed round after round while a client streams control-plane writes
//! through every member: every acknowledged write survives on every member, no write is
//! applied twice, each killed member restarts and catches up, and the trees end identical.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::*;

/// How a streamed write ended: its client name, the status, and the id it was given.
struct Outcome {
    name: String,
    status: u16,
    client_id: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_leader_kills_lose_no_acknowledged_write_and_apply_none_twice() {
    let Some(redis) = tenantry_testkit::configured(tenantry_testkit::Service::Redis) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Compaction every 40 entries: restarted members catch up from snapshots too.
    let (mut nodes, token) = three_members(dir.path(), &redis, &[("TENANTRY_CLUSTER_SNAPSHOT_EVERY", "40")]).await;
    let (status, body) = create_tenant(&token, &nodes[0].api(), "stream").await;
    assert_eq!(status, 201, "{body}");
    all_caught_up(&nodes).await;

    // One client, writes one after another, round-robin over the members. Each creates an
    // OAuth client whose id the server picks: a command applied twice would leave two
    // clients with one name.
    let apis: Vec<String> = nodes.iter().map(Node::api).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (apis, token, stop) = (apis.clone(), token.clone(), stop.clone());
        tokio::spawn(async move {
            let mut outcomes = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("s-{i}");
                let (status, body) = admin_call(
                    &token,
                    &apis[i % apis.len()],
                    Method::POST,
                    "/v1/admin/tenants/stream/clients",
                    Some(json!({"name": name, "grant_types": ["client_credentials"]})),
                )
                .await;
                if status != 201 {
                    // A member down or between leaders: the next member shortly.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let client_id = body["client_id"].as_str().map(str::to_owned);
                outcomes.push(Outcome {
                    name,
                    status,
                    client_id,
                });
                i += 1;
            }
            outcomes
        })
    };

    let mut failovers = Vec::new();
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let leader = current_leader(&nodes).await;
        let index = nodes.iter().position(|n| n.id == leader).unwrap();
        let killed_at = std::time::Instant::now();
        nodes[index].kill();
        eventually(Duration::from_secs(10), "a new leader", || {
            let nodes = &nodes;
            async move {
                for node in nodes.iter().filter(|n| n.server.is_some()) {
                    if let Some(s) = node.status().await
                        && s["role"] == "leader"
                    {
                        return true;
                    }
                }
                false
            }
        })
        .await;
        failovers.push(killed_at.elapsed());
        // Writes go on against two members for a while, then the killed one comes back.
        tokio::time::sleep(Duration::from_millis(700)).await;
        nodes[index].start(false);
        all_caught_up(&nodes).await;
        eprintln!(
            "round {round}: leader {leader} killed, new leader after {:?}",
            failovers[round]
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let outcomes = writer.await.unwrap();
    all_caught_up(&nodes).await;

    let acknowledged: Vec<&Outcome> = outcomes.iter().filter(|o| o.status == 201).collect();
    let unsure: Vec<(&str, u16)> = outcomes
        .iter()
        .filter(|o| o.status != 201)
        .map(|o| (o.name.as_str(), o.status))
        .collect();
    eprintln!(
        "{} writes: {} acknowledged, {} unsure {unsure:?}",
        outcomes.len(),
        acknowledged.len(),
        unsure.len()
    );
    assert!(acknowledged.len() >= 40, "most writes acknowledged: {unsure:?}");
    for (name, status) in &unsure {
        // A killed member refuses connections (0); the others answer 503 while no leader
        // is known or a write's fate is unknown — never another answer.
        assert!(matches!(status, 0 | 503), "{name}: {status}");
    }

    // On every member: each acknowledged write present once under the id it was given,
    // every name at most once (an unsure write may have been applied — once).
    for node in &nodes {
        let names = client_names(&node.fs_root);
        for (name, count) in &names {
            assert_eq!(*count, 1, "{name} applied {count} times on node {}", node.id);
        }
        for outcome in &acknowledged {
            assert_eq!(
                names.get(&outcome.name),
                Some(&1),
                "{} missing on node {}",
                outcome.name,
                node.id
            );
            let id = outcome.client_id.as_deref().unwrap();
            let (status, body) = admin_call(
                &token,
                &node.api(),
                Method::GET,
                &format!("/v1/admin/tenants/stream/clients/{id}"),
                None,
            )
            .await;
            assert_eq!(status, 200, "{id} on node {}: {body}", node.id);
            assert_eq!(body["name"], outcome.name.as_str());
        }
    }
    assert_same_trees(&nodes);
    // Caught up, every member is healthy again: its lag against the commit index the
    // leader announces is zero.
    for node in &nodes {
        let (status, body) = admin_call(&token, &node.api(), Method::GET, "/readyz", None).await;
        let cluster = &body["components"]["cluster"];
        assert_eq!(
            (status, &cluster["status"], &cluster["lag"]),
            (200, &json!("ok"), &json!(0)),
            "{body}"
        );
        assert!(
            cluster["cluster_committed_index"].as_u64() >= cluster["applied_index"].as_u64(),
            "{body}"
        );
    }
}

/// The leader as the running members see it.
async fn current_leader(nodes: &[Node]) -> u64 {
    for _ in 0..100 {
        for node in nodes.iter().filter(|n| n.server.is_some()) {
            if let Some(s) = node.status().await
                && s["role"] == "leader"
            {
                return node.id;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no leader among the running members");
}

/// How many clients of tenant `stream` carry each name, read from a member's files.
fn client_names(fs_root: &Path) -> BTreeMap<String, usize> {
    let mut names = BTreeMap::new();
    for file in files_under(&fs_root.join("tenants/stream/clients")) {
        let client: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        if let Some(name) = client["name"].as_str() {
            *names.entry(name.to_owned()).or_default() += 1;
        }
    }
    names
}
