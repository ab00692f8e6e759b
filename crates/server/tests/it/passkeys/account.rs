//! Passkeys on the hosted account page, with the software authenticator of the parent
//! module: added (the options the page's script fetches, then the form it posts), listed,
//! renamed and removed; and the page offers none where the issuer is an IP address.

use reqwest::Method;
use serde_json::Value;

use super::Device;
use crate::account_page::{account_url, create_user, open_signed_in, post};
use crate::common::browser::Browser;
use crate::common::{start, start_on_localhost};

#[tokio::test]
async fn passkeys_are_added_renamed_and_removed_on_the_account_page() {
    let server = start_on_localhost().await;
    create_user(&server, "ada@example.com", serde_json::json!({})).await;
    let mut browser = Browser::new();
    let page = open_signed_in(&server, &mut browser, "ada@example.com").await;
    assert!(
        page.contains("id=\"passkey-form\"") && page.contains("No passkeys yet."),
        "{page}"
    );

    // The script's request for options: the page's sign-in was a fresh login, so no
    // password is asked; without the CSRF token, none are given.
    let url = format!("{}/passkeys/options", account_url(&server));
    let (status, _, _) = browser.send(Method::POST, &url, Some(&[("csrf", "forged")])).await;
    assert_eq!(status, 400);
    let csrf = crate::common::browser::hidden(&page, "csrf");
    let (status, _, body) = browser.send(Method::POST, &url, Some(&[("csrf", csrf.as_str())])).await;
    assert_eq!(status, 200, "{body}");
    let options: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(options["publicKey"]["rp"]["id"], "localhost");
    assert_eq!(options["publicKey"]["user"]["name"], "ada@example.com");

    let mut device = Device::new(&crate::account_page::public_base(&server));
    let credential = device.create(&options).await.to_string();
    let fields = [("passkey", credential.as_str()), ("name", "Laptop")];
    let (status, location, body) = post(&server, &mut browser, &page, "passkeys", &fields).await;
    assert_eq!(
        (status, location.ends_with("?done=passkey_added")),
        (303, true),
        "{body}"
    );
    // The same credential again is refused with the page.
    let (status, _, body) = post(&server, &mut browser, &page, "passkeys", &fields).await;
    assert!(status >= 400, "{body}");

    let (_, _, page) = browser.send(Method::GET, &account_url(&server), None).await;
    assert!(
        page.contains("The passkey is added.") || page.contains("<strong>Laptop</strong>"),
        "{page}"
    );
    let id = page
        .split("/passkeys/")
        .skip(1)
        .find_map(|rest| rest.split_once("/rename\"").map(|(id, _)| id.to_owned()))
        .expect("a rename form");
    let (status, _, body) = post(
        &server,
        &mut browser,
        &page,
        &format!("passkeys/{id}/rename"),
        &[("name", "Phone")],
    )
    .await;
    assert_eq!(status, 303, "{body}");
    let (_, _, page) = browser.send(Method::GET, &account_url(&server), None).await;
    assert!(page.contains("<strong>Phone</strong>"), "{page}");
    let (status, _, body) = post(
        &server,
        &mut browser,
        &page,
        "passkeys/not-an-id/rename",
        &[("name", "X")],
    )
    .await;
    assert_eq!(status, 404, "{body}");

    let (status, location, body) = post(&server, &mut browser, &page, &format!("passkeys/{id}/remove"), &[]).await;
    assert_eq!(
        (status, location.ends_with("?done=passkey_removed")),
        (303, true),
        "{body}"
    );
    let (_, _, page) = browser.send(Method::GET, &account_url(&server), None).await;
    assert!(page.contains("No passkeys yet."), "{page}");
}

/// An issuer on an IP address cannot have passkeys: the page shows no way to add one.
#[tokio::test]
async fn an_ip_address_issuer_offers_no_passkey_on_the_account_page() {
    let server = start().await;
    create_user(&server, "ada@example.com", serde_json::json!({})).await;
    let mut browser = Browser::new();
    let page = open_signed_in(&server, &mut browser, "ada@example.com").await;
    assert!(!page.contains("passkey-form") && !page.contains("<script"), "{page}");
}
