//! Passkeys on the hosted pages, driven over HTTP with the software authenticator of the
//! parent module: the login page (a passkey alone), the second-factor page, the sign-up
//! page (a passkey-only account), and no passkey where the issuer is an IP address.

use reqwest::Method;
use serde_json::{Value, json};

use super::{Device, PASSWORD, ada_signed_in, add_passkey, origin_of};
use crate::common::api::Api;
use crate::common::{self, TestServer, start};

/// A passkey as the second factor of the hosted login: the page carries WebAuthn options
/// (and a script nonce in its CSP), the form posts the assertion, the code flow finishes
/// with `amr` saying password and key; a replayed assertion gets the page again.
#[tokio::test]
async fn a_passkey_is_the_second_factor_of_the_hosted_login() {
    use crate::common::browser::Browser;
    let server = start().await;
    let api = Api {
        server: &server,
        slug: "local",
    };
    let token = ada_signed_in(&api).await;
    let mut device = Device::new(&origin_of(&server));
    add_passkey(&api, &mut device, &token, Some(PASSWORD)).await;

    let mut browser = Browser::new();
    let (status, page) = crate::mfa::password_step(&server, &mut browser).await;
    assert_eq!(status, 200, "{page}");
    // No authenticator app: the page asks for the passkey, not for a code it cannot take.
    assert!(!page.contains("name=\"code\""), "{page}");
    assert!(page.contains("Confirm it is you with a passkey"), "{page}");
    let marker = "id=\"passkey-options\">";
    let start = page.find(marker).expect("passkey options on the page") + marker.len();
    let end = start + page[start..].find("</script>").unwrap();
    let options: Value = serde_json::from_str(&page[start..end]).unwrap();
    assert_eq!(options["publicKey"]["allowCredentials"].as_array().unwrap().len(), 1);
    let assertion = device.get(&options).await;
    let credential = assertion.to_string();
    let (status, headers, _) = browser.submit(&page, &[("passkey", &credential)]).await;
    assert_eq!(status, 303);
    let claims = crate::mfa::id_token_claims(&server, &headers["location"]).await;
    let amr: Vec<String> = serde_json::from_value(claims["amr"].clone()).unwrap();
    assert_eq!(amr[0], "pwd", "{amr:?}");
    assert!(
        amr.iter().any(|m| m == "hwk" || m == "swk") && amr.contains(&"mfa".to_owned()),
        "{amr:?}"
    );

    // The same assertion again, in a new login: refused, the page comes back with its message.
    let mut browser = Browser::new();
    let (_, page) = crate::mfa::password_step(&server, &mut browser).await;
    let (status, headers, body) = browser.submit(&page, &[("passkey", &credential)]).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("passkey was not accepted"), "{body}");
    assert!(
        headers["content-security-policy"].contains("script-src 'nonce-"),
        "{headers:?}"
    );
}

/// The `data-options` URL of the login page's passkey form.
fn options_url(page: &str) -> String {
    let marker = "data-options=\"";
    let start = page.find(marker).expect("a passkey form on the login page") + marker.len();
    page[start..start + page[start..].find('"').unwrap()].replace("&#x2f;", "/")
}

/// Asks for the login page's passkey options as its script does.
async fn hosted_login_options(browser: &mut crate::common::browser::Browser, page: &str) -> (u16, Value) {
    use crate::common::browser::hidden;
    let form = [
        ("interaction", hidden(page, "interaction")),
        ("csrf", hidden(page, "csrf")),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, body) = browser.send(Method::POST, &options_url(page), Some(&form)).await;
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// A passkey alone signs in on the hosted login page: the page offers it (a script under
/// a CSP nonce that may call back to its origin, the email field open to autofill), its
/// options are bound to the interaction, and the assertion posted with the login form
/// ends the code flow with `amr` saying key, user and mfa — no password. A replayed
/// assertion, or one made for another login's options, gets the login page again (401).
#[tokio::test]
async fn a_passkey_alone_signs_in_on_the_hosted_login_page() {
    use crate::common::browser::Browser;
    let server = common::start_on_localhost().await;
    let api = Api {
        server: &server,
        slug: "local",
    };
    let token = ada_signed_in(&api).await;
    let mut device = Device::new(&server.base.replace("127.0.0.1", "localhost"));
    add_passkey(&api, &mut device, &token, Some(PASSWORD)).await;

    let mut browser = Browser::new();
    let (status, headers, page) = browser
        .send(Method::GET, &crate::mfa::authorize_url(&server), None)
        .await;
    assert_eq!(status, 200, "{page}");
    let csp = &headers["content-security-policy"];
    assert!(
        csp.contains("script-src 'nonce-") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    assert!(page.contains("autocomplete=\"username webauthn\""), "{page}");
    assert!(page.contains("Sign in with a passkey"), "{page}");
    let (status, options) = hosted_login_options(&mut browser, &page).await;
    assert_eq!(status, 200, "{options}");
    assert_eq!(options["publicKey"]["rpId"], "localhost", "{options}");
    assert_eq!(options["publicKey"]["userVerification"], "required", "{options}");
    assert!(
        options["publicKey"]["allowCredentials"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "{options}"
    );
    let credential = device.get(&options).await.to_string();
    let (status, headers, body) = browser.submit(&page, &[("passkey", &credential)]).await;
    assert_eq!(status, 303, "{body}");
    let claims = crate::mfa::id_token_claims(&server, &headers["location"]).await;
    let amr: Vec<String> = serde_json::from_value(claims["amr"].clone()).unwrap();
    assert!(amr.iter().any(|m| m == "hwk" || m == "swk"), "{amr:?}");
    assert!(
        amr.contains(&"user".to_owned()) && amr.contains(&"mfa".to_owned()),
        "{amr:?}"
    );
    assert!(!amr.contains(&"pwd".to_owned()), "{amr:?}");

    // The same assertion in a new login: refused, the login page again with its message.
    let mut browser = Browser::new();
    let (_, _, page) = browser
        .send(Method::GET, &crate::mfa::authorize_url(&server), None)
        .await;
    let (status, _, body) = browser.submit(&page, &[("passkey", &credential)]).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("The passkey was not accepted"), "{body}");
    assert!(body.contains("name=\"password\""), "{body}");

    // An assertion for another login's options, posted with this login's form.
    let mut other = Browser::new();
    let (_, _, other_page) = other.send(Method::GET, &crate::mfa::authorize_url(&server), None).await;
    let (_, other_options) = hosted_login_options(&mut other, &other_page).await;
    let stolen = device.get(&other_options).await.to_string();
    let (status, _, body) = browser.submit(&page, &[("passkey", &stolen)]).await;
    assert_eq!(status, 401, "{body}");
    // Its owner cannot use it either now: the challenge was spent by the failed attempt.
    let (status, _, _) = other.submit(&other_page, &[("passkey", &stolen)]).await;
    assert_eq!(status, 401);

    // Options only for the browser holding the interaction's CSRF token.
    let mut stranger = Browser::new();
    let (status, _) = hosted_login_options(&mut stranger, &page).await;
    assert_eq!(status, 400);
}

/// A server whose issuer is an IP address (as `serve --dev` on 127.0.0.1) offers no
/// passkey on its login page: browsers refuse an IP address as RP ID.
#[tokio::test]
async fn an_ip_address_issuer_offers_no_passkey_on_the_login_page() {
    use crate::common::browser::Browser;
    let server = start().await;
    let (status, headers, page) = Browser::new()
        .send(Method::GET, &crate::mfa::authorize_url(&server), None)
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(!page.contains("passkey-form"), "{page}");
    assert!(
        !headers["content-security-policy"].contains("script-src"),
        "{headers:?}"
    );
}

/// The hosted sign-up page of tenant `shop`, reached from its login page's button.
async fn shop_sign_up_page(
    server: &TestServer,
) -> (
    crate::common::browser::Browser,
    std::collections::HashMap<String, String>,
    String,
) {
    use crate::common::browser::{Browser, form_actions, hidden};
    let mut browser = Browser::new();
    let url = crate::mfa::authorize_url_at(server, "shop");
    let (status, _, login) = browser.send(Method::GET, &url, None).await;
    assert_eq!(status, 200, "{login}");
    let signup = form_actions(&login)
        .into_iter()
        .find(|a| a.ends_with("/signup"))
        .unwrap();
    let form = [
        ("interaction", hidden(&login, "interaction")),
        ("csrf", hidden(&login, "csrf")),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, headers, page) = browser.send(Method::POST, &signup, Some(&form)).await;
    assert_eq!(status, 200, "{page}");
    (browser, headers, page)
}

/// A visitor signs up with a passkey and no password on the hosted sign-up page: the form
/// is checked first (a missing required field makes no challenge), the passkey page's
/// options are bound to the interaction, the account is made from what the options were
/// made for (not from fields posted beside the passkey), and the flow ends at the client
/// with `amr` saying key, not password. The account has no password; a replayed
/// passkey makes nothing.
#[tokio::test]
async fn a_visitor_signs_up_with_a_passkey_on_the_hosted_page() {
    let server = common::start_on_localhost().await;
    server
        .tenant_with_spa(
            "shop",
            json!({"security": {"registration_enabled": true},
                "custom_fields": [{"name": "team", "type": "text", "required": true}]}),
        )
        .await;
    let users = || async {
        use tenantry_dataplane::UserRepository;
        server.ctx("shop").db().await.unwrap().count_users().await.unwrap()
    };
    let (mut browser, headers, page) = shop_sign_up_page(&server).await;
    let browser = &mut browser;
    assert!(page.contains("name=\"with\" value=\"passkey\""), "{page}");
    assert!(
        headers["content-security-policy"].contains("script-src 'nonce-"),
        "{headers:?}"
    );

    let base = [
        ("create", "1"),
        ("with", "passkey"),
        ("email", "grace@example.com"),
        ("given_name", "Grace"),
    ];
    let (status, _, refused) = browser.submit(&page, &base).await;
    assert_eq!(status, 422, "a required custom field is missing: {refused}");
    let mut filled = base.to_vec();
    filled.push(("custom.team", "Compilers"));
    let (status, _, passkey_page) = browser.submit(&page, &filled).await;
    assert_eq!(status, 200, "{passkey_page}");
    assert!(passkey_page.contains("Create your passkey"), "{passkey_page}");
    let marker = "id=\"passkey-options\">";
    let start = passkey_page.find(marker).unwrap() + marker.len();
    let end = start + passkey_page[start..].find("</script>").unwrap();
    let options: Value = serde_json::from_str(&passkey_page[start..end]).unwrap();
    assert_eq!(options["publicKey"]["rp"]["id"], "localhost", "{options}");
    assert_eq!(options["publicKey"]["user"]["name"], "grace@example.com", "{options}");

    let mut device = Device::new(&server.base.replace("127.0.0.1", "localhost"));
    let credential = device.create(&options).await.to_string();
    // A different address posted beside the passkey changes nothing.
    let fields = [
        ("create", "1"),
        ("passkey", credential.as_str()),
        ("email", "mallory@example.com"),
    ];
    let (status, headers, body) = browser.submit(&passkey_page, &fields).await;
    assert_eq!(status, 303, "{body}");
    let claims = crate::mfa::id_token_claims_at(&server, "shop", &headers["location"]).await;
    assert_eq!(claims["email"], "grace@example.com", "{claims}");
    let amr: Vec<String> = serde_json::from_value(claims["amr"].clone()).unwrap();
    assert!(
        amr.iter().any(|m| m == "hwk" || m == "swk") && !amr.contains(&"pwd".to_owned()),
        "{amr:?}"
    );
    assert_eq!(users().await, 1);

    // No password was set: a password login finds nothing to check.
    let api = Api {
        server: &server,
        slug: "shop",
    };
    let login = json!({"email": "grace@example.com", "password": PASSWORD, "client_id": "demo-spa", "scope": "openid"});
    let (status, body) = api.post("/v1/auth/login", login).await;
    assert_eq!(status, 401, "{body}");
    // The passkey signs in alone.
    let options = {
        let (status, options) = api
            .post(
                "/v1/auth/passkeys/login/options",
                json!({"client_id": "demo-spa", "scope": "openid email"}),
            )
            .await;
        assert_eq!(status, 200, "{options}");
        options
    };
    let assertion = device.get(&options).await;
    let (status, body) = api
        .post("/v1/auth/passkeys/login", json!({"credential": assertion}))
        .await;
    assert_eq!(status, 200, "{body}");

    // The same new passkey again, in another sign-up: refused with the page, nothing made.
    let (mut other, _, page) = shop_sign_up_page(&server).await;
    let (status, _, body) = other
        .submit(&page, &[("create", "1"), ("passkey", credential.as_str())])
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("The passkey could not be created"), "{body}");
    assert_eq!(users().await, 1);
}
