//! Passkeys through the headless API, with a software authenticator written here from
//! the WebAuthn data formats (§6.1 authenticator data, §6.5 attestation "none", ES256 over
//! aws-lc-rs), so a test can also play a dishonest client: add a passkey, sign in with it
//! alone and as the second factor, sign up with one and no password, manage them; and
//! every forgery refused with one answer — replayed challenge, wrong origin, wrong RP ID,
//! counter regression, no user verification, another user's handle, and a passkey of
//! tenant A shown to tenant B (which must look exactly like a credential nobody has). On
//! SQLite and on PostgreSQL. (1Password's `passkey-authenticator` was the first choice;
//! its types crate turns on serde_json's `preserve_order` for the whole workspace build,
//! which would make the tests' server differ from the one that ships.)

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::Method;
use serde_json::{Value, json};

use crate::common;
use crate::common::api::Api;
use crate::common::{TestServer, start};

mod account;
mod hosted;

const PASSWORD: &str = "correct horse battery";

/// Authenticator-data flags (WebAuthn §6.1).
const UP: u8 = 0x01;
const UV: u8 = 0x04;
const BE: u8 = 0x08;
const BS: u8 = 0x10;
const AT: u8 = 0x40;

/// One discoverable credential the software authenticator holds.
struct Credential {
    id: Vec<u8>,
    user_handle: Vec<u8>,
    key: EcdsaKeyPair,
    counter: u32,
}

/// A software authenticator (a synced passkey provider: BE and BS set) and the browser
/// around it, as far as a test needs one.
struct Device {
    credentials: Vec<Credential>,
    /// The origin the "browser" writes into `clientDataJSON`.
    origin: String,
}

fn sha256(data: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

fn client_data(kind: &str, challenge: &str, origin: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false})).unwrap()
}

/// rpIdHash, flags, signature counter (§6.1).
fn authenticator_data(rp_id: &str, flags: u8, counter: u32) -> Vec<u8> {
    let mut data = sha256(rp_id.as_bytes());
    data.push(flags);
    data.extend_from_slice(&counter.to_be_bytes());
    data
}

/// The COSE_Key of a P-256 public key (RFC 9053: kty EC2, alg ES256, crv P-256, x, y).
fn cose_key(public: &[u8]) -> Vec<u8> {
    use ciborium::Value as C;
    let (x, y) = public[1..].split_at(32);
    let map = C::Map(vec![
        (C::Integer(1.into()), C::Integer(2.into())),
        (C::Integer(3.into()), C::Integer((-7).into())),
        (C::Integer((-1).into()), C::Integer(1.into())),
        (C::Integer((-2).into()), C::Bytes(x.to_vec())),
        (C::Integer((-3).into()), C::Bytes(y.to_vec())),
    ]);
    let mut out = Vec::new();
    ciborium::into_writer(&map, &mut out).unwrap();
    out
}

impl Device {
    fn new(origin: &str) -> Self {
        Device {
            credentials: Vec::new(),
            origin: origin.to_owned(),
        }
    }

    /// `navigator.credentials.create()` for `options` (`{"publicKey": …}`): a new key
    /// pair, attestation "none"; the credential's `toJSON()`.
    async fn create(&mut self, options: &Value) -> Value {
        use ciborium::Value as C;
        let o = &options["publicKey"];
        let data = client_data("webauthn.create", o["challenge"].as_str().unwrap(), &self.origin);
        let mut id = vec![0; 16];
        aws_lc_rs::rand::SecureRandom::fill(&SystemRandom::new(), &mut id).unwrap();
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).unwrap();
        let mut auth_data = authenticator_data(o["rp"]["id"].as_str().unwrap(), UP | UV | BE | BS | AT, 0);
        auth_data.extend_from_slice(&[0; 16]); // AAGUID: anonymous
        auth_data.extend_from_slice(&(id.len() as u16).to_be_bytes());
        auth_data.extend_from_slice(&id);
        auth_data.extend_from_slice(&cose_key(key.public_key().as_ref()));
        let object = C::Map(vec![
            (C::Text("fmt".into()), C::Text("none".into())),
            (C::Text("attStmt".into()), C::Map(vec![])),
            (C::Text("authData".into()), C::Bytes(auth_data)),
        ]);
        let mut attestation = Vec::new();
        ciborium::into_writer(&object, &mut attestation).unwrap();
        self.credentials.push(Credential {
            id: id.clone(),
            user_handle: B64.decode(o["user"]["id"].as_str().unwrap()).unwrap(),
            key,
            counter: 0,
        });
        json!({
            "id": B64.encode(&id),
            "rawId": B64.encode(&id),
            "type": "public-key",
            "response": {
                "clientDataJSON": B64.encode(&data),
                "attestationObject": B64.encode(&attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {"credProps": {"rk": true}},
            "authenticatorAttachment": "platform",
        })
    }

    /// `navigator.credentials.get()` for `options`, with the RP ID the options name.
    async fn get(&mut self, options: &Value) -> Value {
        let rp_id = options["publicKey"]["rpId"].as_str().unwrap().to_owned();
        self.get_as(options, &rp_id, true).await
    }

    /// An assertion for `options` signed over authenticator data for `rp_id`, with user
    /// verification when `uv`. It uses a credential the options allow, or else — like a
    /// discoverable-credential sign-in, or a dishonest client — the first one it holds.
    async fn get_as(&mut self, options: &Value, rp_id: &str, uv: bool) -> Value {
        let o = &options["publicKey"];
        let data = client_data("webauthn.get", o["challenge"].as_str().unwrap(), &self.origin);
        let allowed: Vec<Vec<u8>> = o["allowCredentials"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| B64.decode(c["id"].as_str().unwrap()).unwrap())
            .collect();
        let credential = match self.credentials.iter().position(|c| allowed.contains(&c.id)) {
            Some(i) => &mut self.credentials[i],
            None => self.credentials.first_mut().expect("a credential"),
        };
        credential.counter += 1;
        let flags = UP | BE | BS | if uv { UV } else { 0 };
        let auth_data = authenticator_data(rp_id, flags, credential.counter);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&sha256(&data));
        let signature = credential.key.sign(&SystemRandom::new(), &signed).unwrap();
        json!({
            "id": B64.encode(&credential.id),
            "rawId": B64.encode(&credential.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": B64.encode(&data),
                "authenticatorData": B64.encode(&auth_data),
                "signature": B64.encode(signature.as_ref()),
                "userHandle": B64.encode(&credential.user_handle),
            },
            "clientExtensionResults": {},
        })
    }

    fn passkeys(&mut self) -> impl Iterator<Item = &mut Credential> {
        self.credentials.iter_mut()
    }
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap()
}

fn amr(tokens: &Value) -> Vec<String> {
    let amr = claims(tokens["id_token"].as_str().expect("an ID token"))["amr"].clone();
    serde_json::from_value(amr).unwrap()
}

/// Ada, a verified user of tenant `local` with a password, signed in through the API:
/// her access token.
async fn ada_signed_in(api: &Api<'_>) -> String {
    let (status, _) = api
        .server
        .admin(
            Method::POST,
            "/v1/admin/tenants/local/users",
            Some(json!({"email": "ada@example.com", "password": PASSWORD, "email_verified": true})),
        )
        .await;
    assert_eq!(status, 201);
    let (_, tokens) = api.login("ada@example.com", PASSWORD).await;
    tokens["access_token"].as_str().unwrap().to_owned()
}

fn origin_of(server: &TestServer) -> String {
    server.base.clone()
}

async fn login_options(api: &Api<'_>) -> Value {
    let (status, options) = api
        .post(
            "/v1/auth/passkeys/login/options",
            json!({"client_id": "demo-spa", "scope": "openid email offline_access"}),
        )
        .await;
    assert_eq!(status, 200, "{options}");
    options
}

/// Adds a passkey to the account of `token` (a fresh session: no proof needed beyond the
/// password given).
async fn add_passkey(api: &Api<'_>, device: &mut Device, token: &str, password: Option<&str>) -> Value {
    let proof = password.map(|p| json!({"current_password": p}));
    let (status, options) = api
        .call(Method::POST, "/v1/auth/passkeys/register/options", Some(token), proof)
        .await;
    assert_eq!(status, 200, "{options}");
    let o = &options["publicKey"];
    assert_eq!(o["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(o["authenticatorSelection"]["userVerification"], "required");
    assert_eq!(o["attestation"], "none");
    let credential = device.create(&options).await;
    let (status, added) = api
        .call(
            Method::POST,
            "/v1/auth/passkeys/register",
            Some(token),
            Some(json!({"credential": credential, "name": "Laptop"})),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    added
}

#[tokio::test]
async fn passkeys_on_sqlite() {
    let server = start().await;
    passkeys(&server, "local").await;
}

#[tokio::test]
async fn passkeys_on_postgres() {
    let server = start().await;
    let client = common::postgres::spa_client(&["openid", "email", "offline_access"]);
    let Some(database) = common::postgres::postgres_tenant(&server, "pg", client).await else {
        return;
    };
    passkeys(&server, "pg").await;
    drop(server);
    database.drop_database().await;
}

async fn passkeys(server: &TestServer, slug: &str) {
    let api = Api { server, slug };
    let (status, body) = server
        .admin(
            Method::POST,
            &format!("/v1/admin/tenants/{slug}/users"),
            Some(json!({"email": "ada@example.com", "password": PASSWORD, "email_verified": true})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let user_id = body["id"].as_str().unwrap().to_owned();
    let (status, tokens) = api.login("ada@example.com", PASSWORD).await;
    assert_eq!(status, 200, "{tokens}");
    let token = tokens["access_token"].as_str().unwrap().to_owned();

    // Adding a factor needs a fresh proof: not the bearer token alone.
    let (status, body) = api
        .call(Method::POST, "/v1/auth/passkeys/register/options", Some(&token), None)
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("reauthentication_required"))
    );
    let mut device = Device::new(&origin_of(server));
    let added = add_passkey(&api, &mut device, &token, Some(PASSWORD)).await;
    assert_eq!(added["name"], "Laptop");
    let passkey_id = added["id"].as_str().unwrap().to_owned();

    // A registration answered twice: the challenge is spent.
    let (_, options) = api
        .call(Method::POST, "/v1/auth/passkeys/register/options", Some(&token), None)
        .await;
    let o = &options["publicKey"];
    assert_eq!(o["excludeCredentials"].as_array().unwrap().len(), 1, "{options}");
    let mut second_device = Device::new(&origin_of(server));
    let credential = second_device.create(&options).await;
    let body = json!({"credential": credential});
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/auth/passkeys/register",
            Some(&token),
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, 201);
    let (status, again) = api
        .call(Method::POST, "/v1/auth/passkeys/register", Some(&token), Some(body))
        .await;
    assert_eq!(
        (status, again["code"].as_str()),
        (400, Some("passkey_invalid")),
        "{again}"
    );

    // Sign-in with the passkey alone: tokens; `amr` says a key, the presence test and MFA.
    let options = login_options(&api).await;
    assert_eq!(options["publicKey"]["userVerification"], "required");
    assert_eq!(options["publicKey"]["allowCredentials"], json!([]));
    let assertion = device.get(&options).await;
    let (status, signed_in) = api
        .post("/v1/auth/passkeys/login", json!({"credential": assertion.clone()}))
        .await;
    assert_eq!(status, 200, "{signed_in}");
    let methods = amr(&signed_in);
    assert!(methods.iter().any(|m| m == "hwk" || m == "swk"), "{methods:?}");
    assert!(
        methods.contains(&"user".to_owned()) && methods.contains(&"mfa".to_owned()),
        "{methods:?}"
    );
    assert!(!methods.contains(&"pwd".to_owned()), "{methods:?}");
    let passkey_token = signed_in["access_token"].as_str().unwrap().to_owned();
    let (status, me) = api.call(Method::GET, "/v1/auth/me", Some(&passkey_token), None).await;
    assert_eq!((status, me["email"].as_str()), (200, Some("ada@example.com")));

    // Replayed: the same response again.
    let (status, replayed) = api
        .post("/v1/auth/passkeys/login", json!({"credential": assertion}))
        .await;
    assert_eq!(
        (status, replayed["code"].as_str()),
        (401, Some("passkey_refused")),
        "{replayed}"
    );
    let refusal = replayed.clone();

    // Wrong origin in clientDataJSON.
    let options = login_options(&api).await;
    device.origin = "http://evil.example".into();
    let forged = device.get(&options).await;
    device.origin = origin_of(server);
    let (status, body) = api.post("/v1/auth/passkeys/login", json!({"credential": forged})).await;
    assert_eq!((status, &body), (401, &refusal));

    // Signed for another RP ID: the same key, its authenticator data hashed for evil.example.
    let options = login_options(&api).await;
    let forged = device.get_as(&options, "evil.example", true).await;
    let rp_id = options["publicKey"]["rpId"].as_str().unwrap().to_owned();
    let (status, body) = api.post("/v1/auth/passkeys/login", json!({"credential": forged})).await;
    assert_eq!((status, &body), (401, &refusal));

    // No user verification where the sign-in needs it.
    let options = login_options(&api).await;
    let unverified = device.get_as(&options, &rp_id, false).await;
    let flags = B64
        .decode(unverified["response"]["authenticatorData"].as_str().unwrap())
        .unwrap()[32];
    assert_eq!(flags & 0x04, 0, "the authenticator did not verify the user");
    let (status, body) = api
        .post("/v1/auth/passkeys/login", json!({"credential": unverified}))
        .await;
    assert_eq!((status, &body), (401, &refusal));

    // Counter regression: a cloned authenticator whose counter is behind.
    let options = login_options(&api).await;
    for key in device.passkeys() {
        key.counter = 0;
    }
    let cloned = device.get(&options).await;
    let (status, body) = api.post("/v1/auth/passkeys/login", json!({"credential": cloned})).await;
    assert_eq!((status, &body), (401, &refusal));
    for key in device.passkeys() {
        key.counter = 1000;
    }

    // Another user's handle with this user's credential.
    let other = server.user(slug, "grace@example.com").await;
    let (status, _) = server
        .admin(
            Method::PUT,
            &format!("/v1/admin/tenants/{slug}/users/{}/password", other.id),
            Some(json!({"password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 204);
    let (_, grace) = api.login("grace@example.com", PASSWORD).await;
    let grace_token = grace["access_token"].as_str().unwrap().to_owned();
    let mut grace_device = Device::new(&origin_of(server));
    add_passkey(&api, &mut grace_device, &grace_token, Some(PASSWORD)).await;
    let options = login_options(&api).await;
    let grace_assertion = grace_device.get(&options).await;
    let options = login_options(&api).await;
    let mut swapped = device.get(&options).await;
    swapped["response"]["userHandle"] = grace_assertion["response"]["userHandle"].clone();
    let (status, body) = api
        .post("/v1/auth/passkeys/login", json!({"credential": swapped}))
        .await;
    assert_eq!((status, &body), (401, &refusal));
    // A registration response is no sign-in.
    let options = login_options(&api).await;
    let (status, body) = api
        .post(
            "/v1/auth/passkeys/login",
            json!({"credential": {"response": {"clientDataJSON": "e30"}}}),
        )
        .await;
    assert_eq!((status, &body), (401, &refusal));
    drop(options);

    // Each refusal is recorded with its reason, never told to the caller.
    let (status, events) = server
        .admin(
            Method::GET,
            &format!("/v1/admin/tenants/{slug}/audit?action=passkey_sign_in&limit=100"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{events}");
    let reasons: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["details"]["reason"].as_str())
        .collect();
    for reason in [
        "challenge",
        "origin",
        "rp_id",
        "user_verification",
        "counter_regression",
        "wrong_user",
    ] {
        assert!(reasons.contains(&reason), "{reason} not in {reasons:?}");
    }

    // The honest device still signs in after all that.
    let options = login_options(&api).await;
    let assertion = device.get(&options).await;
    let (status, body) = api
        .post("/v1/auth/passkeys/login", json!({"credential": assertion}))
        .await;
    assert_eq!(status, 200, "{body}");

    // With a passkey, a password login owes a second factor, which the passkey gives.
    let (status, owed) = api.login("ada@example.com", PASSWORD).await;
    assert_eq!(status, 200, "{owed}");
    assert_eq!(owed["mfa_required"], true, "{owed}");
    assert_eq!(owed["methods"], json!(["passkey"]));
    let mfa_token = owed["mfa_token"].as_str().unwrap();
    let (status, options) = api
        .post("/v1/auth/mfa/passkey/options", json!({"mfa_token": mfa_token}))
        .await;
    assert_eq!(status, 200, "{options}");
    assert_eq!(options["publicKey"]["allowCredentials"].as_array().unwrap().len(), 2);
    // Grace's passkey for Ada's second factor: refused.
    let wrong = grace_device.get(&options).await;
    let (status, body) = api
        .post(
            "/v1/auth/mfa/passkey",
            json!({"mfa_token": mfa_token, "credential": wrong}),
        )
        .await;
    assert_eq!(status, 401, "{body}");
    let (_, options) = api
        .post("/v1/auth/mfa/passkey/options", json!({"mfa_token": mfa_token}))
        .await;
    let assertion = device.get(&options).await;
    // Bound to its mfa_token: another login's token does not finish it.
    let (_, other_login) = api.login("ada@example.com", PASSWORD).await;
    let other_token = other_login["mfa_token"].as_str().unwrap();
    let (status, _) = api
        .post(
            "/v1/auth/mfa/passkey",
            json!({"mfa_token": other_token, "credential": assertion.clone()}),
        )
        .await;
    assert_eq!(status, 401);
    let (_, options) = api
        .post("/v1/auth/mfa/passkey/options", json!({"mfa_token": mfa_token}))
        .await;
    let assertion = device.get(&options).await;
    let (status, completed) = api
        .post(
            "/v1/auth/mfa/passkey",
            json!({"mfa_token": mfa_token, "credential": assertion}),
        )
        .await;
    assert_eq!(status, 200, "{completed}");
    let methods = amr(&completed);
    assert_eq!(methods[0], "pwd", "{methods:?}");
    assert!(methods.contains(&"mfa".to_owned()), "{methods:?}");

    // Management: list, rename, remove (the passkey sign-in counts as a fresh proof).
    let (status, list) = api
        .call(Method::GET, "/v1/auth/passkeys", Some(&passkey_token), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["passkeys"].as_array().unwrap().len(), 2, "{list}");
    assert!(list["passkeys"][0].get("public_key").is_none());
    let (status, renamed) = api
        .call(
            Method::PATCH,
            &format!("/v1/auth/passkeys/{passkey_id}"),
            Some(&passkey_token),
            Some(json!({"name": "  Work laptop "})),
        )
        .await;
    assert_eq!((status, renamed["name"].as_str()), (200, Some("Work laptop")));
    let (status, body) = api
        .call(
            Method::PATCH,
            &format!("/v1/auth/passkeys/{passkey_id}"),
            Some(&passkey_token),
            Some(json!({"name": ""})),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (422, Some("validation_failed")));
    // Not Grace's to rename.
    let (status, _) = api
        .call(
            Method::PATCH,
            &format!("/v1/auth/passkeys/{passkey_id}"),
            Some(&grace_token),
            Some(json!({"name": "mine"})),
        )
        .await;
    assert_eq!(status, 404);
    let second_id = list["passkeys"][1]["id"].as_str().unwrap();
    let (status, body) = api
        .call(
            Method::DELETE,
            &format!("/v1/auth/passkeys/{second_id}"),
            Some(&passkey_token),
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");

    // The administrator sees and removes them.
    let path = format!("/v1/admin/tenants/{slug}/users/{user_id}/passkeys");
    let (status, listed) = server.admin(Method::GET, &path, None).await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["passkeys"].as_array().unwrap().len(), 1);
    let (status, _) = server
        .admin(Method::DELETE, &format!("{path}/{passkey_id}"), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = server
        .admin(Method::DELETE, &format!("{path}/{passkey_id}"), None)
        .await;
    assert_eq!(status, 404);
    // Gone: the device's assertion is refused, like any unknown credential.
    let options = login_options(&api).await;
    let assertion = device.get(&options).await;
    let (status, body) = api
        .post("/v1/auth/passkeys/login", json!({"credential": assertion}))
        .await;
    assert_eq!((status, &body), (401, &refusal));
}

/// A passkey of tenant A is unknown at tenant B (same host, same RP ID, so the browser
/// offers it): B answers exactly what it answers for a credential nobody registered.
#[tokio::test]
async fn a_passkey_of_one_tenant_is_unknown_at_another() {
    let server = start().await;
    server.tenant_with_spa("other", json!({})).await;
    let home = Api {
        server: &server,
        slug: "local",
    };
    let other = Api {
        server: &server,
        slug: "other",
    };
    for slug in ["local", "other"] {
        let (status, _) = server
            .admin(
                Method::POST,
                &format!("/v1/admin/tenants/{slug}/users"),
                Some(json!({"email": "ada@example.com", "password": PASSWORD, "email_verified": true})),
            )
            .await;
        assert_eq!(status, 201);
    }
    let (_, tokens) = home.login("ada@example.com", PASSWORD).await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let mut device = Device::new(&origin_of(&server));
    add_passkey(&home, &mut device, &token, Some(PASSWORD)).await;

    let options = {
        let (status, options) = other
            .post(
                "/v1/auth/passkeys/login/options",
                json!({"client_id": "demo-spa", "scope": "openid email"}),
            )
            .await;
        assert_eq!(status, 200, "{options}");
        options
    };
    assert_eq!(options["publicKey"]["rpId"], "127.0.0.1");
    let foreign = device.get(&options).await;
    let (status_a, body_a) = other
        .post("/v1/auth/passkeys/login", json!({"credential": foreign}))
        .await;

    let (_, options) = other
        .post(
            "/v1/auth/passkeys/login/options",
            json!({"client_id": "demo-spa", "scope": "openid email"}),
        )
        .await;
    // A credential nobody registered: a key of its own, made for the same RP ID.
    let mut stranger = Device::new(&origin_of(&server));
    let made_up = json!({"publicKey": {
        "challenge": B64.encode([7u8; 32]),
        "rp": {"id": "127.0.0.1", "name": "x"},
        "user": {"id": B64.encode([9u8; 32]), "name": "n", "displayName": "n"},
    }});
    stranger.create(&made_up).await;
    let unknown = stranger.get(&options).await;
    let (status_b, body_b) = other
        .post("/v1/auth/passkeys/login", json!({"credential": unknown}))
        .await;
    assert_eq!(status_a, 401);
    assert_eq!((status_a, &body_a), (status_b, &body_b), "the answers must not differ");
}

/// A passkey-only account: signed up with a passkey and no password, signed in at once,
/// and its only passkey cannot be removed.
#[tokio::test]
async fn sign_up_with_a_passkey_and_no_password() {
    let server = start().await;
    server
        .tenant_with_spa(
            "open",
            json!({"security": {"registration_enabled": true, "registration_auto_login": true}}),
        )
        .await;
    let api = Api {
        server: &server,
        slug: "open",
    };
    let (status, options) = api
        .post(
            "/v1/auth/register/passkey/options",
            json!({"email": "new@example.com", "name": "New Person", "client_id": "demo-spa", "scope": "openid email"}),
        )
        .await;
    assert_eq!(status, 200, "{options}");
    assert_eq!(options["publicKey"]["user"]["name"], "new@example.com");
    let mut device = Device::new(&origin_of(&server));
    let credential = device.create(&options).await;
    let (status, registered) = api
        .post("/v1/auth/register/passkey", json!({"credential": credential.clone()}))
        .await;
    assert_eq!(status, 201, "{registered}");
    let tokens = &registered["tokens"];
    let methods = amr(tokens);
    assert!(
        methods.contains(&"mfa".to_owned()) && !methods.contains(&"pwd".to_owned()),
        "{methods:?}"
    );
    let token = tokens["access_token"].as_str().unwrap();
    // The same response again makes nothing.
    let (status, again) = api
        .post("/v1/auth/register/passkey", json!({"credential": credential}))
        .await;
    assert_eq!((status, again["code"].as_str()), (400, Some("passkey_invalid")));
    // The address is taken now.
    let (status, body) = api
        .post("/v1/auth/register/passkey/options", json!({"email": "new@example.com"}))
        .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("email_taken")));

    // No password: a password login fails, the passkey signs in.
    let (status, body) = api
        .post(
            "/v1/auth/login",
            json!({"email": "new@example.com", "password": "any password at all", "client_id": "demo-spa"}),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (401, Some("invalid_credentials")));
    let (_, options) = api
        .post(
            "/v1/auth/passkeys/login/options",
            json!({"client_id": "demo-spa", "scope": "openid email"}),
        )
        .await;
    let assertion = device.get(&options).await;
    let (status, body) = api
        .post("/v1/auth/passkeys/login", json!({"credential": assertion}))
        .await;
    assert_eq!(status, 200, "{body}");

    // Its only passkey is its last way in.
    let (_, list) = api.call(Method::GET, "/v1/auth/passkeys", Some(token), None).await;
    let id = list["passkeys"][0]["id"].as_str().unwrap();
    let (status, body) = api
        .call(Method::DELETE, &format!("/v1/auth/passkeys/{id}"), Some(token), None)
        .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("last_way_in")), "{body}");
    // A second passkey without a password: the passkey sign-in was the proof.
    let mut phone = Device::new(&origin_of(&server));
    add_passkey(&api, &mut phone, token, None).await;
    let (status, _) = api
        .call(Method::DELETE, &format!("/v1/auth/passkeys/{id}"), Some(token), None)
        .await;
    assert_eq!(status, 204);

    // Registration closed: no options.
    let closed = Api {
        server: &server,
        slug: "local",
    };
    let (status, body) = closed
        .post("/v1/auth/register/passkey/options", json!({"email": "x@example.com"}))
        .await;
    assert_eq!((status, body["code"].as_str()), (403, Some("registration_disabled")));
}

/// Adds a passkey through the API; answers the attestation the options asked for, and the
/// status and body of the registration.
async fn register_stating(api: &Api<'_>, token: &str, device: &mut Device) -> (Value, u16, Value) {
    let proof = json!({"current_password": PASSWORD});
    let (status, options) = api
        .call(
            Method::POST,
            "/v1/auth/passkeys/register/options",
            Some(token),
            Some(proof),
        )
        .await;
    assert_eq!(status, 200, "{options}");
    let credential = device.create(&options).await;
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/auth/passkeys/register",
            Some(token),
            Some(json!({"credential": credential})),
        )
        .await;
    (options["publicKey"]["attestation"].clone(), status, body)
}

/// A tenant that lists the authenticator models it accepts asks for `direct` attestation
/// and refuses a new passkey of any other model; the list is checked when it is set.
#[tokio::test]
async fn a_tenant_accepts_only_the_authenticator_models_it_lists() {
    let server = start().await;
    let api = Api {
        server: &server,
        slug: "local",
    };
    let settings = |aaguids: Value| json!({"settings": {"security": {"passkey_aaguids": aaguids}}});
    let (status, body) = server
        .admin(
            Method::PATCH,
            "/v1/admin/tenants/local",
            Some(settings(json!(["not-a-uuid"]))),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(
        body["errors"][0]["field"], "settings.security.passkey_aaguids[0]",
        "{body}"
    );

    let token = ada_signed_in(&api).await;
    // The software authenticator states the anonymous model (all zeros).
    let listed = "cb69481e-8ff7-4039-93ec-0a2729a154a8";
    let (status, body) = server
        .admin(
            Method::PATCH,
            "/v1/admin/tenants/local",
            Some(settings(json!([listed]))),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut device = Device::new(&origin_of(&server));
    let (attestation, status, body) = register_stating(&api, &token, &mut device).await;
    assert_eq!(attestation, "direct");
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "passkey_invalid", "{body}");
    assert!(body["detail"].as_str().unwrap().contains("not accepted here"), "{body}");

    let anonymous = "00000000-0000-0000-0000-000000000000";
    let (status, body) = server
        .admin(
            Method::PATCH,
            "/v1/admin/tenants/local",
            Some(settings(json!([listed, anonymous]))),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut device = Device::new(&origin_of(&server));
    let (_, status, body) = register_stating(&api, &token, &mut device).await;
    assert_eq!(status, 201, "{body}");

    // Without a list, attestation is not asked for.
    let (status, _) = server
        .admin(Method::PATCH, "/v1/admin/tenants/local", Some(settings(json!([]))))
        .await;
    assert_eq!(status, 200);
    let mut device = Device::new(&origin_of(&server));
    let (attestation, status, body) = register_stating(&api, &token, &mut device).await;
    assert_eq!(attestation, "none");
    assert_eq!(status, 201, "{body}");
}

/// An export with credentials carries the passkeys and the user handle they hold: after
/// an import, the same authenticator signs in at the copy by itself (the handle finds the
/// account), and an export without credentials carries none.
#[tokio::test]
async fn passkeys_move_with_an_export_and_sign_in_at_the_copy() {
    let server = start().await;
    let api = Api {
        server: &server,
        slug: "local",
    };
    let token = ada_signed_in(&api).await;
    let mut device = Device::new(&origin_of(&server));
    add_passkey(&api, &mut device, &token, Some(PASSWORD)).await;
    let export = |query: &'static str| {
        server
            .http
            .get(format!("{}/v1/admin/tenants/local/export{query}", server.base))
            .bearer_auth(&server.admin_token)
            .send()
    };
    let without: Value = export("").await.unwrap().json().await.unwrap();
    let users = without["users"].as_array().unwrap();
    assert!(users.iter().all(|u| u.get("passkeys").is_none()), "{without}");
    let document = export("?credentials=true").await.unwrap().text().await.unwrap();
    let parsed: Value = serde_json::from_str(&document).unwrap();
    let ada = parsed["users"]
        .as_array()
        .unwrap()
        .iter()
        .position(|u| u["email"] == "ada@example.com")
        .unwrap();
    assert_eq!(
        parsed["users"][ada]["passkeys"]["credentials"][0]["name"], "Laptop",
        "{parsed}"
    );
    let response = server
        .http
        .post(format!("{}/v1/admin/tenants/local-copy/import", server.base))
        .bearer_auth(&server.admin_token)
        .header("content-type", "application/json")
        .body(document.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());

    let copy = Api {
        server: &server,
        slug: "local-copy",
    };
    let options = login_options(&copy).await;
    let assertion = device.get(&options).await;
    let (status, signed_in) = copy
        .post("/v1/auth/passkeys/login", json!({"credential": assertion}))
        .await;
    assert_eq!(status, 200, "{signed_in}");
    assert_eq!(
        claims(signed_in["id_token"].as_str().unwrap())["email"],
        "ada@example.com"
    );

    // A document whose passkey values are not what they claim is refused whole.
    let mut broken: Value = serde_json::from_str(&document).unwrap();
    broken["users"][ada]["passkeys"]["credentials"][0]["aaguid"] = json!("not base64url!");
    let response = server
        .http
        .post(format!("{}/v1/admin/tenants/local-broken/import", server.base))
        .bearer_auth(&server.admin_token)
        .header("content-type", "application/json")
        .body(broken.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    assert!(server.state.resolver.resolve_slug("local-broken").is_err());
}
