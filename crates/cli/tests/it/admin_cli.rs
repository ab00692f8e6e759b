//! Admin subcommands through the real binary (`tenantry keys ...`, `tenantry client ...`),
//! the JWKS endpoint, and no private key material in any response, log line or plaintext
//! file.

use crate::common::*;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::Method;
use serde_json::Value;
use tenantry_controlplane::model::KeyRing;
use tenantry_crypto::{MasterKey, SealContext, SecretBox};

/// Every private key of `ring` (sealed for `owner`), as the PKCS#8 DER bytes.
fn private_keys(secrets: &SecretBox, owner: &str, ring: &KeyRing) -> Vec<Vec<u8>> {
    ring.keys
        .iter()
        .map(|k| {
            let field = tenantry_keys::seal_field(&k.kid);
            let b64 = secrets.open(SealContext::new(owner, &field), &k.private_key.0).unwrap();
            STANDARD.decode(b64.as_bytes()).unwrap()
        })
        .collect()
}

/// Ways a private key could leak into text: its PKCS#8 in base64, base64url or hex (an
/// interior slice, so padding and line wrapping do not hide it).
fn leak_patterns(der: &[u8]) -> Vec<String> {
    [
        STANDARD.encode(der),
        URL_SAFE_NO_PAD.encode(der),
        der.iter().map(|b| format!("{b:02x}")).collect(),
    ]
    .into_iter()
    .map(|p| p[8..48].to_owned())
    .collect()
}

#[tokio::test]
async fn keys_cli_rotates_and_no_private_material_leaks_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let server = Server::start(
        &root,
        &["--dev"],
        &[("SECRETBOX_MASTER_KEY", KEY_A), ("RUST_LOG", "debug")],
    );
    let admin = Admin::of(&server);
    let cli = |args: &[&str]| {
        tenantry(dir.path())
            .args(args)
            .args(["--url", &server.base, "--token", &server.admin_token()])
            .output()
            .unwrap()
    };

    let out = cli(&["keys", "list", "--tenant", "local"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["keys"].as_array().unwrap().len(), 3);
    let jwks = reqwest::get(server.url("/t/local/jwks.json")).await.unwrap();
    let etag = jwks.headers()["etag"].to_str().unwrap().to_owned();
    let jwks_body = jwks.text().await.unwrap();

    let out = cli(&["keys", "rotate", "--tenant", "local", "--alg", "ES256"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rotated: Value = serde_json::from_slice(&out.stdout).unwrap();
    let states: Vec<(&str, &str)> = rotated["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["alg"].as_str().unwrap(), k["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states.len(), 4);
    assert!(states.contains(&("ES256", "retiring")) && states.contains(&("ES256", "active")));
    let out = cli(&["keys", "rotate", "--tenant", "local", "--alg", "HS256"]);
    assert!(!out.status.success(), "an unknown algorithm is refused");
    let out = cli(&["keys", "rotate", "--tenant", "ghost"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("tenant_not_found"));

    let response = reqwest::Client::new()
        .get(server.url("/t/local/jwks.json"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "the ETag changed with the rotation");
    let new_jwks = response.text().await.unwrap();
    let (_, tenants) = admin.send(Method::GET, "/v1/admin/tenants/local", None).await;
    let ready = reqwest::get(server.url("/readyz")).await.unwrap().text().await.unwrap();
    let responses = [
        jwks_body,
        new_jwks,
        listed.to_string(),
        rotated.to_string(),
        tenants.to_string(),
        ready,
    ];
    for r in &responses {
        assert!(
            !r.contains("\"d\":") && !r.contains("tsb1."),
            "no private JWK member or sealed key: {r}"
        );
    }

    let stderr = server.stderr();
    let stdout = server.stdout_lines.join("\n");
    server.terminate();

    // Open every sealed private key with the master key, then look for it everywhere.
    let secrets = SecretBox::new(MasterKey::from_base64(KEY_A).unwrap(), vec![]);
    let system: KeyRing =
        serde_json::from_str(&std::fs::read_to_string(root.join("system/keys.json")).unwrap()).unwrap();
    let tenant: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("tenants/local/tenant.json")).unwrap()).unwrap();
    let ring: KeyRing =
        serde_json::from_str(&std::fs::read_to_string(root.join("tenants/local/keys.json")).unwrap()).unwrap();
    let mut keys = private_keys(&secrets, "system", &system);
    keys.extend(private_keys(&secrets, tenant["id"].as_str().unwrap(), &ring));
    assert_eq!(keys.len(), 7);
    let probe = format!("x{}y", STANDARD.encode(&keys[0]));
    assert!(
        probe.contains(&leak_patterns(&keys[0])[0]),
        "the patterns find an encoded key"
    );

    let mut texts: Vec<(String, String)> = files_under(&root)
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("tenant-db"))
        .map(|p| {
            (
                p.display().to_string(),
                String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned(),
            )
        })
        .collect();
    texts.push(("server stderr".into(), stderr));
    texts.push(("server stdout".into(), stdout));
    for (i, r) in responses.into_iter().enumerate() {
        texts.push((format!("response {i}"), r));
    }
    for der in &keys {
        for pattern in leak_patterns(der) {
            for (name, text) in &texts {
                assert!(!text.contains(&pattern), "private key material in {name}");
            }
        }
    }
}

#[tokio::test]
async fn client_cli_creates_shows_updates_rotates_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_dev(&dir.path().join("root"), &[]);
    let cli = |args: &[&str]| {
        let out = tenantry(dir.path())
            .args(args)
            .args(["--url", &server.base, "--token", &server.admin_token()])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let file = dir.path().join("client.json");
    std::fs::write(
        &file,
        r#"{"client_id": "cron", "name": "Cron", "grant_types": ["client_credentials"], "scopes": ["jobs"]}"#,
    )
    .unwrap();
    let (ok, out, err) = cli(&[
        "client",
        "create",
        "--tenant",
        "local",
        "--file",
        file.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let secret = created["client_secret"].as_str().unwrap().to_owned();

    let token = |secret: &str| {
        let secret = secret.to_owned();
        let url = server.url("/t/local/token");
        async move {
            reqwest::Client::new()
                .post(url)
                .basic_auth("cron", Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(token(&secret).await, 200);
    let (ok, out, _) = cli(&["client", "show", "--tenant", "local", "cron"]);
    assert!(ok && !out.contains(&secret));
    std::fs::write(&file, r#"{"name": "Cron jobs"}"#).unwrap();
    let (ok, out, err) = cli(&[
        "client",
        "update",
        "--tenant",
        "local",
        "cron",
        "--file",
        file.to_str().unwrap(),
    ]);
    assert!(ok && out.contains("Cron jobs"), "{err}");
    let (ok, out, _) = cli(&["client", "rotate-secret", "--tenant", "local", "cron"]);
    assert!(ok);
    let new_secret = serde_json::from_str::<Value>(&out).unwrap()["client_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(token(&secret).await, 401);
    assert_eq!(token(&new_secret).await, 200);
    let (ok, out, _) = cli(&["client", "list", "--tenant", "local"]);
    assert!(ok && out.contains("demo-spa") && out.contains("cron"));
    let (ok, _, _) = cli(&["client", "delete", "--tenant", "local", "cron"]);
    assert!(ok);
    let (ok, _, err) = cli(&["client", "show", "--tenant", "local", "cron"]);
    assert!(!ok && err.contains("not_found"));
}

#[test]
fn user_cli_creates_lists_sets_passwords_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_dev(&dir.path().join("root"), &[]);
    let run = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write;
        let mut child = tenantry(dir.path())
            .args(args)
            .args(["--url", &server.base, "--token", &server.admin_token()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let file = dir.path().join("user.json");
    std::fs::write(
        &file,
        r#"{"email": "grace@example.com", "password": "a long enough secret", "given_name": "Grace"}"#,
    )
    .unwrap();
    let (ok, out, err) = run(
        &["user", "create", "--tenant", "local", "--file", file.to_str().unwrap()],
        None,
    );
    assert!(ok, "{err}");
    let id = serde_json::from_str::<Value>(&out).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (ok, out, _) = run(&["user", "list", "--tenant", "local"], None);
    assert!(ok && out.contains("grace@example.com"));
    let (ok, _, err) = run(&["user", "set-password", "--tenant", "local", &id], Some("short\n"));
    assert!(!ok && err.contains("validation_failed"), "{err}");
    let (ok, _, err) = run(
        &["user", "set-password", "--tenant", "local", &id],
        Some("another long secret\n"),
    );
    assert!(ok, "{err}");
    let (ok, _, _) = run(&["user", "delete", "--tenant", "local", &id], None);
    assert!(ok);
    let (ok, _, err) = run(&["user", "show", "--tenant", "local", &id], None);
    assert!(!ok && err.contains("not_found"));
}

/// The rest of the admin resources from the CLI: roles (with a user holding one), scopes,
/// sessions, the audit trails and admins; tables by default, JSON on request; a problem
/// ends the process non-zero with its code; shell completions.
#[tokio::test]
async fn resource_commands_print_tables_or_json_and_fail_with_the_problem_code() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let server = Server::start(&root, &["--dev"], &[("SECRETBOX_MASTER_KEY", KEY_A)]);
    let token = server.admin_token();
    let run = |output: &str, args: &[&str]| {
        let out = tenantry(dir.path())
            .args(args)
            .args(["--url", &server.base, "--token", &token, "--output", output])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, _, err) = run(
        "json",
        &[
            "role",
            "put",
            "--tenant",
            "local",
            "billing",
            "--permission",
            "invoices:read",
            "--permission",
            "invoices:write",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, table, _) = run("table", &["role", "list", "--tenant", "local"]);
    assert_eq!(code, Some(0));
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("NAME"), "{table}");
    assert!(lines.next().unwrap().starts_with("billing"), "{table}");

    let (_, users, _) = run("json", &["user", "list", "--tenant", "local"]);
    let users: Value = serde_json::from_str(&users).unwrap();
    let demo = users["users"][0]["id"].as_str().unwrap().to_owned();
    let (code, out, err) = run(
        "table",
        &["role", "assign", "--tenant", "local", "--user", &demo, "billing"],
    );
    assert_eq!((code, out.trim()), (Some(0), "assigned role `billing`"), "{err}");
    let (_, held, _) = run("json", &["role", "of-user", "--tenant", "local", &demo]);
    let held: Value = serde_json::from_str(&held).unwrap();
    assert_eq!(
        held["permissions"],
        serde_json::json!(["invoices:read", "invoices:write"])
    );

    let (code, out, _) = run("table", &["session", "list", "--tenant", "local", "--user", &demo]);
    assert_eq!((code, out.trim()), (Some(0), "(no sessions)"));
    let (code, out, _) = run("json", &["scope", "list", "--tenant", "local"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("\"roles\""), "the roles scope is built in: {out}");
    let (code, out, err) = run("table", &["audit", "tenant", "local"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("(no events)") || out.starts_with("ID"), "{out}");
    let (code, out, _) = run("table", &["admin", "list"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("bootstrap") && out.contains("token"), "{out}");
    let (code, out, _) = run("json", &["admin", "me"]);
    assert_eq!(code, Some(0));
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["kind"], "admin");

    // A problem: non-zero, with its code and title on stderr, nothing on stdout.
    let (code, out, err) = run(
        "table",
        &["role", "assign", "--tenant", "local", "--user", &demo, "ghost"],
    );
    assert_eq!(code, Some(1));
    assert!(out.is_empty());
    assert!(
        err.contains("404") && err.contains("not_found") && err.contains("No such resource"),
        "{err}"
    );

    let completions = tenantry(dir.path()).args(["completions", "bash"]).output().unwrap();
    assert!(completions.status.success());
    assert!(String::from_utf8_lossy(&completions.stdout).contains("tenantry"));
}

/// `tenantry export` and `tenantry import`: the document goes to a file with progress on
/// standard error, comes back into a new tenant (dry run first), and a second import
/// without `--mode` is refused with the problem's code.
#[test]
fn export_and_import_move_a_tenant_through_files() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_dev(&dir.path().join("root"), &[]);
    let run = |args: &[&str]| {
        let out = tenantry(dir.path())
            .args(args)
            .args(["--url", &server.base, "--token", &server.admin_token()])
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let user = dir.path().join("user.json");
    std::fs::write(&user, r#"{"email": "ada@example.com", "given_name": "Ada"}"#).unwrap();
    let (ok, _, err) = run(&["user", "create", "--tenant", "local", "--file", user.to_str().unwrap()]);
    assert!(ok, "{err}");

    let file = dir.path().join("local.json");
    let (ok, out, err) = run(&["export", "--tenant", "local", "-o", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert!(out.is_empty(), "the document goes to the file");
    assert!(err.contains("exported 2 users of tenant local"), "{err}");
    let document: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(document["format"], "tenantry-tenant");
    assert_eq!(document["user_count"], 2, "the demo user and Ada");

    let (ok, out, err) = run(&["import", file.to_str().unwrap(), "--tenant", "copy", "--dry-run"]);
    assert!(ok, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (report["dry_run"].as_bool(), report["users"]["created"].as_u64()),
        (Some(true), Some(2))
    );
    let (ok, _, err) = run(&["tenant", "show", "copy"]);
    assert!(
        !ok && err.contains("tenant_not_found"),
        "a dry run makes nothing: {err}"
    );

    let (ok, out, err) = run(&["import", file.to_str().unwrap(), "--tenant", "copy"]);
    assert!(ok, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["created_tenant"], true);
    let (ok, out, _) = run(&["user", "list", "--tenant", "copy"]);
    assert!(ok && out.contains("ada@example.com"), "{out}");
    let (ok, _, err) = run(&["import", file.to_str().unwrap(), "--tenant", "copy"]);
    assert!(!ok && err.contains("409") && err.contains("tenant_exists"), "{err}");
    let (ok, out, err) = run(&["import", file.to_str().unwrap(), "--tenant", "copy", "--mode", "merge"]);
    assert!(ok, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["users"]["updated"], 2);
    let (ok, out, err) = run(&["transfer-key"]);
    assert!(ok && out.contains("ttk1."), "{out}{err}");
}

#[tokio::test]
async fn providers_cli_tests_a_provider_and_finds_accounts_by_identity() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let server = Server::start_dev(&root, &[]);
    let admin = Admin::of(&server);
    let cli = |args: &[&str]| {
        tenantry(dir.path())
            .args(args)
            .args(["--url", &server.base, "--token", &server.admin_token()])
            .output()
            .unwrap()
    };
    // A provider on a private address: the installation's outbound policy refuses it.
    let provider = serde_json::json!({"id": "corp", "kind": "oidc", "client_id": "c",
        "issuer_url": "https://10.0.0.1/realms/corp"});
    let (status, body) = admin
        .send(
            Method::PATCH,
            "/v1/admin/tenants/local",
            Some(serde_json::json!({"settings": {"social_providers": [provider]}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let out = cli(&["providers", "test", "--tenant", "local", "--provider", "corp"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("upstream_unavailable") && stderr.contains("refused"),
        "{stderr}"
    );
    let out = cli(&["providers", "test", "--tenant", "local", "--provider", "nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("upstream_unknown"));

    let out = cli(&[
        "providers",
        "identity",
        "--tenant",
        "local",
        "--provider",
        "corp",
        "--subject",
        "s-1",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not_found"));
    let (_, users) = admin.send(Method::GET, "/v1/admin/tenants/local/users", None).await;
    let demo = users["users"][0]["id"].as_str().unwrap().to_owned();
    let out = cli(&["providers", "identities", "--tenant", "local", "--user", &demo]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["identities"], serde_json::json!([]));
}
