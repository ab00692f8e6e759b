//! The shared password login behind the hosted page: account lockout with its unlock
//! time, one answer for unknown accounts and wrong passwords, verified-email policy, and
//! hashes upgraded to the tenant's current Argon2 parameters at the next login.

use crate::common;
use crate::common::browser::{Browser, form_action, hidden};
use crate::common::{TestServer, start};
use reqwest::Method;
use serde_json::json;
use tenantry_dataplane::UserRepository;

const PASSWORD: &str = "correct horse battery";

fn authorize_url(server: &TestServer) -> String {
    format!(
        "{}/t/local/authorize?response_type=code&client_id=demo-spa&redirect_uri=http%3A%2F%2Flocalhost%3A3000%2Fcallback\
         &scope=openid&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256",
        server.base
    )
}

/// One password attempt through the hosted form: status, Retry-After, body.
async fn attempt(server: &TestServer, email: &str, password: &str) -> (u16, Option<String>, String) {
    let mut browser = Browser::new();
    let (status, _, page) = browser.send(Method::GET, &authorize_url(server), None).await;
    assert_eq!(status, 200, "{page}");
    let form = [
        ("interaction", hidden(&page, "interaction")),
        ("csrf", hidden(&page, "csrf")),
        ("email", email.to_owned()),
        ("password", password.to_owned()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, headers, body) = browser.send(Method::POST, &form_action(&page), Some(&form)).await;
    (status, headers.get("retry-after").cloned(), body)
}

async fn patch_security(server: &TestServer, security: serde_json::Value) {
    let (status, body) = server
        .admin(
            Method::PATCH,
            "/v1/admin/tenants/local",
            Some(json!({"settings": {"security": security}})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn create_user(server: &TestServer, email: &str, verified: bool) -> uuid::Uuid {
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/local/users",
            Some(json!({"email": email, "password": PASSWORD, "email_verified": verified})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().parse().unwrap()
}

/// The error paragraph of a refused login page (the rest differs by nonces and tokens).
fn error_text(page: &str) -> String {
    let start = page.find("role=\"alert\">").expect("an error message") + "role=\"alert\">".len();
    page[start..start + page[start..].find('<').unwrap()].to_owned()
}

#[tokio::test]
async fn lockout_after_repeated_failures_for_known_and_unknown_accounts_then_unlock() {
    let server = start().await;
    patch_security(&server, json!({"max_login_attempts": 3, "lockout_duration_secs": 2})).await;
    create_user(&server, "ada@example.com", true).await;

    // Unknown account and wrong password: the same status and the same words.
    let (wrong_status, _, wrong_page) = attempt(&server, "ada@example.com", "not the password").await;
    let (unknown_status, _, unknown_page) = attempt(&server, "nobody@example.com", "not the password").await;
    assert_eq!((wrong_status, unknown_status), (401, 401));
    assert_eq!(error_text(&wrong_page), error_text(&unknown_page));

    // The third failure locks the account (known or not) for the lockout duration.
    attempt(&server, "ada@example.com", "still wrong").await;
    let (status, retry_after, page) = attempt(&server, "ADA@example.com", "third").await;
    assert_eq!(status, 429, "{page}");
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().unwrap() <= 2));
    attempt(&server, "nobody@example.com", "x").await;
    let (status, _, _) = attempt(&server, "nobody@example.com", "y").await;
    assert_eq!(status, 429, "unknown accounts lock the same way");

    // Locked: even the right password waits.
    let (status, _, _) = attempt(&server, "ada@example.com", PASSWORD).await;
    assert_eq!(status, 429);
    tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
    let (status, _, page) = attempt(&server, "ada@example.com", PASSWORD).await;
    assert_eq!(status, 303, "unlocked after the lockout: {page}");
}

#[tokio::test]
async fn parallel_guesses_never_exceed_the_lockout() {
    let server = start().await;
    patch_security(&server, json!({"max_login_attempts": 3, "lockout_duration_secs": 60})).await;
    create_user(&server, "eve-target@example.com", true).await;
    // Each browser holds its login form before any guess is sent, so the guesses race.
    let mut forms = Vec::new();
    for _ in 0..8 {
        let mut browser = Browser::new();
        let (status, _, page) = browser.send(Method::GET, &authorize_url(&server), None).await;
        assert_eq!(status, 200, "{page}");
        forms.push((browser, page));
    }
    let guess = |(mut browser, page): (Browser, String), password: String| async move {
        let form = [
            ("interaction", hidden(&page, "interaction")),
            ("csrf", hidden(&page, "csrf")),
            ("email", "eve-target@example.com".to_owned()),
            ("password", password),
        ];
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        browser.send(Method::POST, &form_action(&page), Some(&form)).await.0
    };
    let right = forms.pop().unwrap();
    let wrong: Vec<_> = forms
        .into_iter()
        .enumerate()
        .map(|(i, form)| tokio::spawn(guess(form, format!("guess number {i}"))))
        .collect();
    // The right password arrives while the wrong ones still wait for the hasher: had the
    // lockout only been checked (not counted) before hashing, it would get in.
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let right = guess(right, PASSWORD.to_owned()).await;
    assert_eq!(
        right, 429,
        "the fourth attempt is refused, even with the right password"
    );
    let mut statuses = Vec::new();
    for task in wrong {
        statuses.push(task.await.unwrap());
    }
    statuses.sort_unstable();
    // Three passwords tried: two plain failures and the one that locked; refusals after.
    assert_eq!(statuses, [401, 401, 429, 429, 429, 429, 429]);
}

#[tokio::test]
async fn verified_email_policy_and_hash_upgrade_at_login() {
    let server = start().await;
    let unverified = create_user(&server, "new@example.com", false).await;
    let ada = create_user(&server, "ada@example.com", true).await;
    let db = server.ctx("local").db().await.unwrap();
    let before = db.password(ada).await.unwrap().unwrap();
    assert!(before.contains("m=19456,t=2,p=1"), "{before}");

    patch_security(&server, json!({"require_verified_email": true, "password_hash": {"memory_kib": 7168, "iterations": 5, "parallelism": 1}})).await;
    let (status, _, page) = attempt(&server, "new@example.com", PASSWORD).await;
    assert_eq!(status, 403, "{page}");
    assert!(db.user_by_id(unverified, &Default::default()).await.unwrap().is_some());

    let (status, _, page) = attempt(&server, "ada@example.com", PASSWORD).await;
    assert_eq!(status, 303, "{page}");
    let after = db.password(ada).await.unwrap().unwrap();
    assert!(after.contains("m=7168,t=5,p=1"), "upgraded on login: {after}");
    let (status, _, _) = attempt(&server, "ada@example.com", PASSWORD).await;
    assert_eq!(status, 303, "the upgraded hash verifies");
}

/// Admission control over HTTP: one hashing worker, one waiting slot, half of them per
/// tenant. A flood of logins on one tenant is refused fast (503 with Retry-After) while a
/// login on another tenant still goes through.
#[tokio::test]
async fn a_flooded_tenant_is_shed_while_another_tenant_logs_in() {
    let server = common::start_with_config(Some(
        "[limits]\nhash_workers = 1\nhash_queue = 1\nhash_tenant_share_percent = 50\nhash_max_wait_ms = 10000\n",
    ))
    .await;
    // The flooded tenant hashes slowly, so its one slot stays busy.
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants",
            Some(json!({"slug": "flooded", "settings": {"user_db": {"driver": "sqlite"}, "security": {"password_hash": {"memory_kib": 65536, "iterations": 4, "parallelism": 1}}}})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/flooded/clients",
            Some(
                json!({"client_id": "app", "name": "App", "client_type": "public", "first_party": true,
                "redirect_uris": ["http://localhost/cb"], "scopes": ["openid"]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    create_user(&server, "ada@example.com", true).await;

    let login = |slug: &'static str, client: &'static str, email: String, password: &'static str| {
        let http = server.http.clone();
        let url = format!("{}/v1/auth/login", server.base);
        async move {
            let started = std::time::Instant::now();
            let response = http
                .post(url)
                .header("X-Tenant-Slug", slug)
                .json(&json!({"email": email, "password": password, "client_id": client}))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let retry = response.headers().contains_key("retry-after");
            (status, retry, started.elapsed())
        }
    };
    // Keep the flooded tenant's slot busy with a stream of logins (spraying: one guess per
    // account, so no account lockout gets in the way).
    let flood: Vec<_> = (0..12)
        .map(|i| tokio::spawn(login("flooded", "app", format!("spray{i}@example.com"), "guess")))
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let (status, _, took) = login("local", "demo-spa", "ada@example.com".into(), PASSWORD).await;
    assert_eq!(status, 200, "the other tenant logs in ({took:?})");
    let mut shed = 0;
    for attempt in flood {
        let (status, retry, took) = attempt.await.unwrap();
        if status == 503 {
            shed += 1;
            assert!(retry, "503 carries Retry-After");
            assert!(
                took < std::time::Duration::from_millis(250),
                "refused fast, not queued: {took:?}"
            );
        } else {
            assert_eq!(status, 401, "an admitted attempt is simply a wrong password");
        }
    }
    assert!(shed >= 8, "most of the flood is shed: {shed} of 12");
}

/// Logins refused because hashing is saturated (503) never reached a verdict: they do not
/// count against the account's lockout, so a user who retries a correct password while
/// the server is busy is not locked out by the server's own trouble.
#[tokio::test]
async fn refusals_for_saturation_do_not_count_against_the_lockout() {
    let server = common::start_with_config(Some(
        "[limits]\nhash_workers = 1\nhash_queue = 0\nhash_tenant_share_percent = 100\nhash_max_wait_ms = 10000\n",
    ))
    .await;
    patch_security(
        &server,
        json!({"max_login_attempts": 2, "lockout_duration_secs": 600,
            "password_hash": {"memory_kib": 65536, "iterations": 4, "parallelism": 1}}),
    )
    .await;
    create_user(&server, "busy@example.com", true).await;
    let login = |email: &'static str, password: &'static str| {
        let http = server.http.clone();
        let url = format!("{}/v1/auth/login", server.base);
        async move {
            http.post(url)
                .header("X-Tenant-Slug", "local")
                .json(&json!({"email": email, "password": password, "client_id": "demo-spa"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // One slow verification holds the only hashing slot...
    let holder = tokio::spawn(login("someone-else@example.com", "whatever"));
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    // ...so these are shed without a verdict.
    for _ in 0..3 {
        assert_eq!(login("busy@example.com", PASSWORD).await, 503);
    }
    assert_eq!(holder.await.unwrap(), 401);
    assert_eq!(login("busy@example.com", PASSWORD).await, 200, "not locked by 503s");
}

/// The deny-list policy: a listed password is refused wherever a password is set; a
/// tenant that asks for the list on an installation without one cannot take passwords.
#[tokio::test]
async fn a_password_on_the_deny_list_is_refused() {
    let list = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        list.path(),
        "# the usual suspects\nCorrect Horse Battery Staple\nletmein-letmein\n",
    )
    .unwrap();
    let config = format!("password_deny_list_file = {:?}\n", list.path().display().to_string());
    let server = common::start_with_config(Some(&config)).await;
    patch_security(&server, json!({"password_deny_list": true})).await;
    let (status, body) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/local/users",
            Some(json!({"email": "ada@example.com", "password": "correct horse battery staple"})),
        )
        .await;
    assert_eq!(
        (status, body["errors"][0]["message"].as_str()),
        (422, Some("is too common; choose another")),
        "{body}"
    );
    let (status, _) = server
        .admin(
            Method::POST,
            "/v1/admin/tenants/local/users",
            Some(json!({"email": "ada@example.com", "password": "an uncommon passphrase"})),
        )
        .await;
    assert_eq!(status, 201);

    let bare = start().await;
    patch_security(&bare, json!({"password_deny_list": true})).await;
    let (status, body) = bare
        .admin(
            Method::POST,
            "/v1/admin/tenants/local/users",
            Some(json!({"email": "ada@example.com", "password": "an uncommon passphrase"})),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("password_deny_list_missing"))
    );
    let (status, body) = bare.admin(Method::GET, "/v1/admin/tenants/local/users", None).await;
    assert_eq!(
        (status, body["users"].as_array().map(Vec::len)),
        (200, Some(1)),
        "only the demo user: {body}"
    );
}
