//! What a browser sends back to the hosted login pages: the `Cookie` header (the session,
//! trusted-device and CSRF cookies, read by `tenantry_server::web::cookies::cookie`), the
//! CSRF check of a form against its cookie, and the sealed interaction of the login forms
//! (`SecretBox::open` with the interaction's context). Any header or form value is read or
//! refused, never a panic; nothing the fuzzer makes opens as a sealed interaction; and what
//! the server seals opens to the same text, for this tenant only.
#![no_main]

use std::sync::OnceLock;

use axum::http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use tenantry_crypto::{MasterKey, SealContext, SecretBox};
use tenantry_server::web::cookies::{CSRF_COOKIE, DEVICE_COOKIE, SESSION_COOKIE, cookie};
use tenantry_server::web::csrf;

fn secrets() -> &'static SecretBox {
    static SECRETS: OnceLock<SecretBox> = OnceLock::new();
    SECRETS.get_or_init(|| SecretBox::new(MasterKey::generate(), vec![]))
}

fuzz_target!(|data: &[u8]| {
    let (cookies, form_value) = match data.iter().position(|b| *b == 0xFF) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(form_value) = std::str::from_utf8(form_value) else {
        return;
    };

    // The Cookie header, as many headers as there are lines.
    let mut headers = HeaderMap::new();
    for line in cookies.split(|b| *b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(line) {
            headers.append(header::COOKIE, value);
        }
    }
    for name in [SESSION_COOKIE, DEVICE_COOKIE, CSRF_COOKIE] {
        if let Some(value) = cookie(&headers, name) {
            assert!(
                !value.is_empty() && !value.contains(';'),
                "a cookie value spans pairs: {value:?}"
            );
        }
    }
    // The CSRF check: a form matches only its own, non-empty cookie.
    let expected = cookie(&headers, CSRF_COOKIE);
    let matched = csrf::form_matches(&headers, Some(form_value));
    assert_eq!(
        matched,
        expected.as_deref() == Some(form_value),
        "CSRF check disagrees with equality"
    );
    assert!(
        !csrf::form_matches(&headers, None),
        "a form without a CSRF field matched"
    );

    // A sealed interaction from the form: nothing forged opens.
    let acme = SealContext::new("7d0c1f4e-0000-4000-8000-00000000acme", "interaction");
    assert!(secrets().open(acme, form_value).is_err(), "a forged interaction opened");
    // What the server seals opens to the same text, and only for the same tenant.
    let sealed = secrets().seal(acme, form_value);
    assert_eq!(secrets().open(acme, &sealed).unwrap().as_str(), form_value);
    let other = SealContext::new("7d0c1f4e-0000-4000-8000-0000000other", "interaction");
    assert!(
        secrets().open(other, &sealed).is_err(),
        "one tenant's interaction opened at another"
    );
});
