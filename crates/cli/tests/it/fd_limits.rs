//! The real binary under a small file-descriptor limit: tenant pools are sized from the
//! limit, so many busy tenants do not run the process out of descriptors.

use crate::common::*;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn many_busy_tenants_fit_in_a_small_descriptor_limit() {
    const LIMIT: u64 = 512;
    const TENANTS: usize = 40;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_dev_with_fd_limit(&dir.path().join("root"), &[], LIMIT);
    let admin = Admin::of(&server);
    for i in 0..TENANTS {
        let (status, body) = admin
            .send(
                Method::POST,
                "/v1/admin/tenants",
                Some(json!({"slug": format!("t{i}"), "settings": {"user_db": {"driver": "sqlite"}}})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    // Each tenant in turn gets 8 requests at once that read its database (4 of them the
    // unauthenticated reset page): with 256 pools x 8 connections x 3 descriptors, this
    // used to exhaust the limit and every later tenant answered 503.
    for i in 0..TENANTS {
        let mut requests = tokio::task::JoinSet::new();
        for n in 0..8 {
            let http = admin.http.clone();
            let token = admin.token.clone();
            let url = if n % 2 == 0 {
                format!("{}/t/t{i}/reset-password?token=x{n}", admin.base)
            } else {
                format!("{}/v1/admin/tenants/t{i}/users", admin.base)
            };
            requests.spawn(async move {
                let response = http.get(&url).bearer_auth(token).send().await.unwrap();
                (url, response.status().as_u16())
            });
        }
        while let Some(done) = requests.join_next().await {
            let (url, status) = done.unwrap();
            assert!(status < 500, "{url} answered {status}; stderr:\n{}", server.stderr());
        }
    }
    let (status, _) = admin.send(Method::GET, "/v1/admin/tenants/t0/users", None).await;
    assert_eq!(status, 200);
    let ready: Value = admin
        .http
        .get(server.url("/readyz"))
        .bearer_auth(&admin.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fds = &ready["components"]["file_descriptors"];
    assert_eq!(fds["limit"], LIMIT, "{ready}");
    assert_eq!(fds["status"], "ok", "{ready}");
    assert!(
        ready["components"]["tenant_databases"]["max_pools"].as_u64().unwrap() * 8 * 3 <= LIMIT / 2,
        "{ready}"
    );
    assert!(!server.stderr().contains("Too many open files"), "{}", server.stderr());
}
