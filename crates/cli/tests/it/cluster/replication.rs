//! Writes through any member, a leader kill under writes, snapshot catch-up, identical
//! trees; tokens issued by one member used on the others.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_through_any_member_reach_all_and_survive_a_leader_kill() {
    let Some(redis) = tenantry_testkit::configured(tenantry_testkit::Service::Redis) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut nodes, token) = three_members(dir.path(), &redis, &[("TENANTRY_CLUSTER_SNAPSHOT_EVERY", "20")]).await;

    // A write through a follower is forwarded and answered as if local.
    let leader = nodes[0].status().await.unwrap()["leader_id"].as_u64().unwrap();
    let follower = nodes.iter().find(|n| n.id != leader).unwrap();
    let (status, body) = create_tenant(&token, &follower.api(), "via-follower").await;
    assert_eq!(status, 201, "{body}");
    // Read back at once on the member that took it, then everywhere.
    let (status, _) = admin_call(
        &token,
        &follower.api(),
        Method::GET,
        "/v1/admin/tenants/via-follower",
        None,
    )
    .await;
    assert_eq!(status, 200);
    for node in &nodes {
        let api = node.api();
        eventually(Duration::from_secs(5), "the tenant on every member", || {
            let (api, token) = (api.clone(), token.clone());
            async move {
                admin_call(
                    &token,
                    &api,
                    Method::GET,
                    "/t/via-follower/.well-known/openid-configuration",
                    None,
                )
                .await
                .0 == 200
            }
        })
        .await;
    }
    // A refusal comes back the same way: the slug is taken.
    let (status, body) = create_tenant(
        &token,
        &nodes.iter().find(|n| n.id != leader).unwrap().api(),
        "via-follower",
    )
    .await;
    assert_eq!(status, 409, "{body}");
    // A SQLite tenant database would diverge per node: refused in cluster mode.
    let (status, body) = admin_call(
        &token,
        &nodes[0].api(),
        Method::POST,
        "/v1/admin/tenants",
        Some(json!({"slug": "local-file"})),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("settings.user_db"), "{body}");

    // Writes stream through every member while the leader is killed.
    let apis: Vec<String> = nodes.iter().map(Node::api).collect();
    let writer = {
        let (apis, token) = (apis.clone(), token.clone());
        tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut unsure = Vec::new();
            for i in 0..60 {
                let slug = format!("w-{i}");
                let api = &apis[i % apis.len()];
                let (status, _) = create_tenant(&token, api, &slug).await;
                match status {
                    201 => acknowledged.push(slug),
                    _ => unsure.push((slug, status)),
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            (acknowledged, unsure)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed_at = Instant::now();
    let leader_index = nodes.iter().position(|n| n.id == leader).unwrap();
    nodes[leader_index].kill();
    let survivors: Vec<usize> = (0..3).filter(|i| *i != leader_index).collect();
    eventually(Duration::from_secs(10), "a new leader", || {
        let node = &nodes[survivors[0]];
        async move {
            node.status()
                .await
                .is_some_and(|s| s["leader_id"].as_u64().is_some_and(|l| l != leader))
        }
    })
    .await;
    let failover = killed_at.elapsed();
    let (acknowledged, unsure) = writer.await.unwrap();
    assert!(
        acknowledged.len() >= 30,
        "most writes acknowledged: {acknowledged:?} / {unsure:?}"
    );
    for status in unsure.iter().map(|(_, s)| *s) {
        // The killed member refuses connections (0); the others answer 503 while no
        // leader is known or a write's fate is unknown — never 500.
        assert!(matches!(status, 0 | 503), "{unsure:?}");
    }
    // Every acknowledged write is on every survivor.
    for i in &survivors {
        let api = nodes[*i].api();
        for slug in &acknowledged {
            let (status, _) = admin_call(&token, &api, Method::GET, &format!("/v1/admin/tenants/{slug}"), None).await;
            assert_eq!(status, 200, "{slug} on node {}", nodes[*i].id);
        }
    }
    eprintln!("failover: writes acknowledged again after {failover:?}");

    // More writes, enough to pass a snapshot and purge the log the killed member missed.
    let live = nodes[survivors[0]].api();
    for i in 0..40 {
        let (status, body) = create_tenant(&token, &live, &format!("after-{i}")).await;
        assert_eq!(status, 201, "{body}");
    }
    let purged = nodes[survivors[0]].status().await.unwrap()["purged_index"].as_u64();
    assert!(purged.is_some(), "the log was compacted");

    // The killed member restarts and catches up (from a snapshot: its entries are purged).
    nodes[leader_index].start(false);
    all_caught_up(&nodes).await;
    let restarted = &nodes[leader_index];
    let (status, _) = admin_call(
        &token,
        &restarted.api(),
        Method::GET,
        "/v1/admin/tenants/after-39",
        None,
    )
    .await;
    assert_eq!(status, 200);

    // All trees are identical.
    assert!(tree_of(&nodes[0].fs_root).keys().any(|k| k.contains("after-39")));
    assert_same_trees(&nodes);
    // Readiness names the role and the leader.
    let (status, body) = admin_call(&token, &restarted.api(), Method::GET, "/readyz", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["components"]["control_plane"]["mode"], "cluster", "{body}");
    assert!(body["components"]["cluster"]["leader_id"].is_u64(), "{body}");
}

/// A fresh PostgreSQL database for a tenant every member shares: (admin URL, its DSN, name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_issued_by_one_member_work_on_the_others() {
    let Some(redis) = tenantry_testkit::configured(tenantry_testkit::Service::Redis) else {
        return;
    };
    let Some(pg) = tenantry_testkit::configured(tenantry_testkit::Service::Postgres) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (nodes, token) = three_members(dir.path(), &redis, &[]).await;
    let (dsn, db_name) = fresh_postgres(&pg).await;
    let api = |i: usize| nodes[i].api();

    // Tenant, clients and a user, each through a different member.
    let (status, body) = admin_call(
        &token,
        &api(1),
        Method::POST,
        "/v1/admin/tenants",
        Some(json!({"slug": "pg", "settings": {"user_db": {"driver": "postgres", "dsn": dsn}}})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let spa = json!({"client_id": "demo-spa", "name": "SPA", "client_type": "public", "first_party": true,
        "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": ["http://localhost:3000/callback"], "scopes": ["openid", "email", "offline_access"]});
    let (status, body) = admin_call(&token, &api(2), Method::POST, "/v1/admin/tenants/pg/clients", Some(spa)).await;
    assert_eq!(status, 201, "{body}");
    let backend =
        json!({"client_id": "backend", "name": "Backend", "grant_types": ["client_credentials"], "scopes": ["api"]});
    let (status, made) = admin_call(
        &token,
        &api(0),
        Method::POST,
        "/v1/admin/tenants/pg/clients",
        Some(backend),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let secret = made["client_secret"].as_str().unwrap().to_owned();
    let (status, body) = admin_call(
        &token,
        &api(2),
        Method::POST,
        "/v1/admin/tenants/pg/users",
        Some(json!({"email": "ada@example.com", "password": "a cluster password", "email_verified": true})),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // Signed in on member 1; the access token introspects on member 2 and reads userinfo on 3.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/auth/login", api(0)))
        .header("x-tenant-slug", "pg")
        .json(
            &json!({"email": "ada@example.com", "password": "a cluster password", "client_id": "demo-spa",
            "scope": "openid email offline_access"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let tokens: Value = response.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let (status, body) = form(
        &format!("{}/t/pg/introspect", api(1)),
        Some(("backend", &secret)),
        &[("token", access)],
    )
    .await;
    assert_eq!((status, &body["active"]), (200, &json!(true)), "{body}");
    let response = reqwest::Client::new()
        .get(format!("{}/t/pg/userinfo", api(2)))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let issuer = format!("{}/t/pg", api(0));
    for i in 0..3 {
        let (status, body) = admin_call(
            &token,
            &api(i),
            Method::GET,
            "/t/pg/.well-known/openid-configuration",
            None,
        )
        .await;
        assert_eq!(
            (status, body["issuer"].as_str()),
            (200, Some(issuer.as_str())),
            "one issuer on every member"
        );
    }

    // Refreshed on member 2; the spent refresh token replayed on member 3 revokes the family
    // for all: the new one no longer works on member 1.
    let (status, rotated) = form(
        &format!("{}/t/pg/token", api(1)),
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", "demo-spa"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let (status, body) = form(
        &format!("{}/t/pg/token", api(2)),
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", "demo-spa"),
        ],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    let (status, body) = form(
        &format!("{}/t/pg/token", api(0)),
        None,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rotated["refresh_token"].as_str().unwrap()),
            ("client_id", "demo-spa"),
        ],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");

    // A key rotation through member 3: every member serves the same JWKS at once after it
    // is acknowledged there, and signs with the new key.
    let (status, body) = admin_call(&token, &api(2), Method::POST, "/v1/admin/tenants/pg/keys/rotate", None).await;
    assert_eq!(status, 200, "{body}");
    let mut bodies = Vec::new();
    for i in 0..3 {
        let api = api(i);
        let start = Instant::now();
        let jwks = loop {
            let body: Value = reqwest::get(format!("{api}/t/pg/jwks.json"))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if body["keys"].as_array().is_some_and(|k| k.len() >= 2) {
                break body;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the rotated key on member {}",
                i + 1
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        bodies.push(jwks);
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]), "one JWKS: {bodies:?}");
    for i in 0..3 {
        let (status, issued) = form(
            &format!("{}/t/pg/token", api(i)),
            Some(("backend", &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await;
        assert_eq!(status, 200, "{issued}");
        let kid = kid_of(issued["access_token"].as_str().unwrap());
        assert!(
            bodies[0]["keys"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kid"] == kid.as_str()),
            "member {} signs with a published key",
            i + 1
        );
        let (status, body) = form(
            &format!("{}/t/pg/introspect", api((i + 1) % 3)),
            Some(("backend", &secret)),
            &[("token", issued["access_token"].as_str().unwrap())],
        )
        .await;
        assert_eq!((status, &body["active"]), (200, &json!(true)), "{body}");
    }
    drop(nodes);
    drop_postgres(&pg, &db_name).await;
}
