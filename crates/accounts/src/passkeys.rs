//! Passkeys (WebAuthn): the registration and authentication ceremonies, for every use a
//! passkey has — the first and only factor (usernameless, discoverable credentials), the
//! second factor after a password, and the factor a passkey-only account signs up with.
//!
//! The relying-party checks (challenge, origin, RP ID hash, signature, user presence and
//! verification, counter, backup flags) are the `passki` crate's, on aws-lc-rs; this
//! module keeps what it does not: challenges single use and short lived in the tenant's
//! database (spent before the response is verified, so a failed attempt burns it too),
//! credentials looked up only in this tenant's database by the digest of their id, the
//! user handle checked against the credential's owner, the counter moved forward in one
//! conditional statement, and one answer (`passkey_refused`) for every failed sign-in, so
//! a caller never learns whether a credential exists — here or at another tenant that
//! shares the RP ID.
//!
//! The RP ID is the host of the tenant's issuer and the one accepted origin is the
//! issuer's origin, both from configuration, never from a request's `Host`.

use chrono::{DateTime, Utc};
use passki::{
    AttestationConveyancePreference, AuthenticationCredential, AuthenticationOptions, AuthenticationState, ClientData,
    Passki, PasskiError, RegistrationCredential, RegistrationExtensions, RegistrationOptions, RegistrationState,
    ResidentKeyRequirement, StoredPasskey, UserVerificationRequirement,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tenantry_dataplane::model::User;
use tenantry_dataplane::{Outcome, Passkey, PasskeyRepository, PasskeyUse, TenantDb, WebauthnChallenge};
use tenantry_errors::{ApiError, ErrorCode};
use tenantry_tenancy::TenantContext;
use uuid::Uuid;

use crate::events;

/// How long a ceremony may take from its options to its response.
pub const CHALLENGE_TTL: chrono::Duration = chrono::Duration::minutes(5);
/// What the browser is told it may take (milliseconds), a little under [`CHALLENGE_TTL`].
const CEREMONY_TIMEOUT_MS: u64 = 240_000;
/// Most passkeys one account may hold.
pub const MAX_PASSKEYS_PER_USER: i64 = 25;
/// Longest passkey name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Ceremony options one client address may ask for per minute, per tenant (each stores a
/// challenge row, and anyone may ask).
pub const OPTIONS_PER_IP: (u32, std::time::Duration) = (30, std::time::Duration::from_secs(60));
/// Bytes of a new WebAuthn user handle.
const HANDLE_BYTES: usize = 32;

/// Flags of the authenticator data (WebAuthn §6.1).
const FLAG_UV: u8 = 0x04;
const FLAG_BE: u8 = 0x08;
const FLAG_BS: u8 = 0x10;

/// What a ceremony is for; its options are good for nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A signed-in user adds a passkey.
    Register,
    /// A passkey signs someone in, first and only factor (usernameless).
    Login,
    /// A passkey completes a login whose first factor passed.
    SecondFactor,
    /// A new account is made with a passkey and no password.
    Signup,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Register => "register",
            Purpose::Login => "login",
            Purpose::SecondFactor => "second_factor",
            Purpose::Signup => "signup",
        }
    }
}

/// What the second step of a ceremony needs, stored with its challenge.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum CeremonyState {
    Register {
        state: RegistrationState,
    },
    Authenticate {
        state: AuthenticationState,
        /// What the caller asked for at the start (a client and scope to sign in to).
        #[serde(default)]
        context: Value,
    },
    Signup {
        state: RegistrationState,
        handle: Vec<u8>,
        context: Value,
    },
}

/// The lookup key of a credential id (`passkey_credentials.credential_id_hash`).
pub fn credential_id_hash(credential_id: &[u8]) -> String {
    tenantry_crypto::hash_token(&Passki::base64_encode(credential_id))
}

/// Whether browsers can make and use passkeys for this tenant: its issuer names a host a
/// browser takes as an RP ID (not an IP address, which WebAuthn refuses). The hosted
/// pages show passkey buttons only then.
pub fn browsers_offer(ctx: &TenantContext) -> bool {
    url::Url::parse(&ctx.issuer).is_ok_and(|issuer| matches!(issuer.host(), Some(url::Host::Domain(_))))
}

/// The tenant's relying party: RP ID = the issuer's host, origin = the issuer's origin.
pub fn relying_party(ctx: &TenantContext) -> Result<Passki, ApiError> {
    let issuer = url::Url::parse(&ctx.issuer).map_err(|_| ApiError::internal())?;
    let host = issuer.host_str().ok_or_else(ApiError::internal)?;
    let origin = issuer.origin().ascii_serialization();
    Ok(Passki::new(host, &[origin], &ctx.entry.tenant.display_name))
}

/// The options of a ceremony, as WebAuthn's JSON (`PublicKeyCredential.parse…FromJSON`
/// reads `publicKey`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CeremonyOptions {
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    pub public_key: Value,
}

fn options(challenge: impl Serialize) -> Result<CeremonyOptions, ApiError> {
    let public_key = serde_json::to_value(challenge).map_err(|_| ApiError::internal())?;
    Ok(CeremonyOptions { public_key })
}

/// The name the browser shows for a user's passkey: the user, then the tenant, so a
/// picker that holds passkeys of several tenants of one host tells them apart.
fn display_name(ctx: &TenantContext, user_name: &str) -> String {
    format!("{user_name} ({})", ctx.entry.tenant.display_name)
}

async fn store_challenge(
    db: &TenantDb,
    purpose: Purpose,
    user_id: Option<Uuid>,
    binding: Option<&str>,
    state: &CeremonyState,
) -> Result<(), ApiError> {
    let now = Utc::now();
    let challenge = match state {
        CeremonyState::Register { state } | CeremonyState::Signup { state, .. } => &state.challenge,
        CeremonyState::Authenticate { state, .. } => &state.challenge,
    };
    let row = WebauthnChallenge {
        challenge_hash: challenge_hash(challenge),
        purpose: purpose.as_str().to_owned(),
        user_id,
        binding_hash: binding.map(tenantry_crypto::hash_token),
        state: serde_json::to_string(state).map_err(|_| ApiError::internal())?,
        created_at: now,
        expires_at: now + CHALLENGE_TTL,
    };
    db.store_webauthn_challenge(&row).await?;
    Ok(())
}

fn challenge_hash(challenge: &[u8]) -> String {
    tenantry_crypto::hash_token(&Passki::base64_encode(challenge))
}

/// Why a response is not accepted, before anything is told to the caller.
#[derive(Debug)]
enum Refusal {
    /// Not a WebAuthn response at all (no readable `clientDataJSON`).
    Malformed,
    /// The challenge is unknown, spent, expired, of another purpose, or bound elsewhere.
    Challenge,
    /// The credential is not registered in this tenant, or not the one allowed.
    UnknownCredential,
    /// The relying-party checks failed.
    Verification(&'static str),
    /// The signature counter did not move forward.
    CounterRegression,
    /// The user handle names someone else, or the account is not active.
    WrongUser,
}

impl Refusal {
    fn reason(&self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::Challenge => "challenge",
            Refusal::UnknownCredential => "unknown_credential",
            Refusal::Verification(why) => why,
            Refusal::CounterRegression => "counter_regression",
            Refusal::WrongUser => "wrong_user",
        }
    }
}

/// A stable, caller-independent reason for a failed relying-party check (the library's
/// own messages may echo what the caller sent).
fn verification_reason(e: &PasskiError) -> &'static str {
    match e {
        PasskiError::ChallengeMismatch => "challenge",
        PasskiError::OriginMismatch { .. }
        | PasskiError::CrossOriginNotAllowed
        | PasskiError::TopOriginMismatch { .. } => "origin",
        PasskiError::ClientDataTypeMismatch { .. } => "client_data_type",
        PasskiError::RpIdHashMismatch => "rp_id",
        PasskiError::UserNotPresent => "user_presence",
        PasskiError::UserVerificationRequired => "user_verification",
        PasskiError::CounterRegression => "counter_regression",
        PasskiError::InvalidBackupFlags => "backup_flags",
        PasskiError::CredentialNotAllowed => "credential_not_allowed",
        PasskiError::SignatureVerificationFailed => "signature",
        PasskiError::UnsupportedAlgorithm(_) => "algorithm",
        PasskiError::CredentialIdMismatch => "credential_id",
        _ => "malformed",
    }
}

/// Reads the challenge a response answers from its `clientDataJSON` and spends it: the
/// stored state when it was live, of `purpose`, and bound to `binding` (if it was bound).
async fn spend_challenge(
    db: &TenantDb,
    client_data_json: &str,
    purpose: Purpose,
    binding: Option<&str>,
) -> Result<(WebauthnChallenge, CeremonyState), Refusal> {
    let bytes = Passki::base64_decode(client_data_json).map_err(|_| Refusal::Malformed)?;
    let client_data = ClientData::from_bytes(&bytes).map_err(|_| Refusal::Malformed)?;
    let challenge = Passki::base64_decode(&client_data.challenge).map_err(|_| Refusal::Malformed)?;
    let row = db
        .spend_webauthn_challenge(&challenge_hash(&challenge), Utc::now())
        .await
        .map_err(|_| Refusal::Challenge)?
        .ok_or(Refusal::Challenge)?;
    if row.purpose != purpose.as_str() {
        return Err(Refusal::Challenge);
    }
    match (&row.binding_hash, binding) {
        (None, _) => {}
        (Some(stored), Some(given)) if tenantry_crypto::verify_token_hash(given, stored) => {}
        _ => return Err(Refusal::Challenge),
    }
    let state = serde_json::from_str(&row.state).map_err(|_| Refusal::Challenge)?;
    Ok((row, state))
}

fn client_data_of(credential: &Value) -> Option<&str> {
    credential.get("response")?.get("clientDataJSON")?.as_str()
}

/// The library's view of a stored passkey.
fn stored(passkey: &Passkey) -> StoredPasskey {
    let mut s = StoredPasskey::default();
    s.credential_id = passkey.credential_id.clone();
    s.public_key = passkey.public_key.clone();
    s.counter = u32::try_from(passkey.sign_count).unwrap_or(u32::MAX);
    s.algorithm = passkey.algorithm;
    s.be = passkey.backup_eligible;
    s.bs = passkey.backup_state;
    s
}

// ---------------------------------------------------------------------------------------
// Registration: a signed-in user adds a passkey.

/// Starts adding a passkey to `user`'s account: options that exclude the passkeys they
/// have, ask for a discoverable credential and user verification, and no attestation.
pub async fn start_registration(ctx: &TenantContext, db: &TenantDb, user: &User) -> Result<CeremonyOptions, ApiError> {
    let existing = db.passkeys(user.id).await?;
    if existing.len() as i64 >= MAX_PASSKEYS_PER_USER {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!("an account holds at most {MAX_PASSKEYS_PER_USER} passkeys; remove one first"),
        ));
    }
    let new_handle = tenantry_crypto::random_key::<HANDLE_BYTES>();
    let handle = db.passkey_handle(user.id, &new_handle[..], Utc::now()).await?;
    let exclude: Vec<StoredPasskey> = existing.iter().map(stored).collect();
    let rp = relying_party(ctx)?;
    let user_name = user.name.clone().unwrap_or_else(|| user.email.clone());
    let (challenge, state) = rp
        .start_passkey_registration(
            &handle,
            &user.email,
            &display_name(ctx, &user_name),
            registration_options(ctx, &exclude),
        )
        .map_err(|_| ApiError::internal())?;
    store_challenge(
        db,
        Purpose::Register,
        Some(user.id),
        None,
        &CeremonyState::Register { state },
    )
    .await?;
    options(challenge)
}

/// Registration options: a discoverable credential with user verification, attestation
/// `none` — or `direct` where the tenant lists the authenticator models it accepts, so the
/// browser passes the model (AAGUID) on instead of zeroing it.
fn registration_options<'a>(ctx: &TenantContext, exclude: &'a [StoredPasskey]) -> RegistrationOptions<'a> {
    let mut options = RegistrationOptions::default();
    options.timeout = CEREMONY_TIMEOUT_MS;
    options.resident_key = ResidentKeyRequirement::Required;
    options.user_verification = UserVerificationRequirement::Required;
    options.attestation = if ctx.entry.tenant.settings.security.passkey_aaguids.is_empty() {
        AttestationConveyancePreference::None
    } else {
        AttestationConveyancePreference::Direct
    };
    options.exclude_credentials = Some(exclude);
    let mut extensions = RegistrationExtensions::default();
    extensions.cred_props = Some(true);
    options.extensions = Some(extensions);
    options
}

fn invalid_registration(why: &str) -> ApiError {
    ApiError::new(
        ErrorCode::PasskeyInvalid,
        format!("the new passkey was not accepted: {why}"),
    )
}

/// A verified new credential, not yet stored.
struct NewCredential {
    passkey: StoredPasskey,
    user_verified: bool,
}

/// Verifies a registration response against its spent challenge.
fn verify_registration(
    ctx: &TenantContext,
    credential: &Value,
    state: &RegistrationState,
) -> Result<NewCredential, ApiError> {
    let parsed: RegistrationCredential =
        serde_json::from_value(credential.clone()).map_err(|_| invalid_registration("not a WebAuthn credential"))?;
    let passkey = relying_party(ctx)?
        .finish_passkey_registration(&parsed, state)
        .map_err(|e| invalid_registration(verification_reason(&e)))?;
    // Only discoverable credentials sign in without a username; one the browser says is
    // not would leave the account with a passkey that cannot be used as asked.
    if passkey.rk == Some(false) {
        return Err(invalid_registration(
            "the authenticator did not make a discoverable credential",
        ));
    }
    let allowed = &ctx.entry.tenant.settings.security.passkey_aaguids;
    if !allowed.is_empty() && !allowed.contains(&Uuid::from_bytes(passkey.aaguid).hyphenated().to_string()) {
        return Err(invalid_registration("this kind of authenticator is not accepted here"));
    }
    // The library checked UV (required by the options); kept with the row.
    Ok(NewCredential {
        passkey,
        user_verified: true,
    })
}

/// The default name of a new passkey: where it syncs, and when it was added.
fn default_name(passkey: &StoredPasskey, now: DateTime<Utc>) -> String {
    let kind = if passkey.be { "Synced passkey" } else { "Security key" };
    format!("{kind} ({})", now.format("%Y-%m-%d"))
}

/// A passkey name as given: trimmed, 1 to [`MAX_NAME_CHARS`] characters, no control
/// characters.
pub fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(ApiError::new(
            ErrorCode::ValidationFailed,
            format!("name must be 1 to {MAX_NAME_CHARS} characters without control characters"),
        ));
    }
    Ok(name.to_owned())
}

async fn store_new(
    db: &TenantDb,
    user_id: Uuid,
    new: NewCredential,
    name: Option<String>,
) -> Result<Passkey, ApiError> {
    let now = Utc::now();
    let p = new.passkey;
    let row = Passkey {
        id: Uuid::now_v7(),
        user_id,
        credential_id_hash: credential_id_hash(&p.credential_id),
        credential_id: p.credential_id.clone(),
        public_key: p.public_key.clone(),
        algorithm: p.algorithm,
        sign_count: i64::from(p.counter),
        backup_eligible: p.be,
        backup_state: p.bs,
        user_verified: new.user_verified,
        discoverable: p.rk,
        transports: p
            .transports
            .iter()
            .filter_map(|t| serde_json::to_value(t).ok()?.as_str().map(str::to_owned))
            .collect(),
        aaguid: p.aaguid.to_vec(),
        attestation: format!("{:?}", p.attestation_type).to_lowercase(),
        name: name.unwrap_or_else(|| default_name(&p, now)),
        created_at: now,
        last_used_at: None,
    };
    match db.add_passkey(&row).await {
        Ok(()) => Ok(row),
        Err(tenantry_dataplane::DbError::Conflict(_)) => Err(ApiError::new(
            ErrorCode::AlreadyExists,
            "this passkey is already registered",
        )),
        Err(e) => Err(e.into()),
    }
}

/// Completes adding a passkey: the response must answer a live registration challenge of
/// this very user. Answers the stored passkey (`passkey_added` is recorded).
pub async fn finish_registration(
    ctx: &TenantContext,
    db: &TenantDb,
    user: &User,
    credential: &Value,
    name: Option<&str>,
) -> Result<Passkey, ApiError> {
    let name = name.map(check_name).transpose()?;
    let client_data = client_data_of(credential).ok_or_else(|| invalid_registration("not a WebAuthn credential"))?;
    let (row, state) = spend_challenge(db, client_data, Purpose::Register, None)
        .await
        .map_err(|r| {
            invalid_registration(if matches!(r, Refusal::Malformed) {
                "not a WebAuthn credential"
            } else {
                "the challenge is unknown, used or expired"
            })
        })?;
    let CeremonyState::Register { state } = state else {
        return Err(invalid_registration("the challenge is unknown, used or expired"));
    };
    if row.user_id != Some(user.id) {
        return Err(invalid_registration("the challenge is unknown, used or expired"));
    }
    let new = verify_registration(ctx, credential, &state)?;
    let passkey = store_new(db, user.id, new, name).await?;
    let event = events::Event::by_user("passkey_added", Outcome::Success, user.id)
        .with_details(serde_json::json!({ "passkey": passkey.id, "synced": passkey.backup_eligible }));
    events::record(db, event).await;
    Ok(passkey)
}

// ---------------------------------------------------------------------------------------
// Sign-up with a passkey and no password.

/// A new account's passkey, verified, with the handle it was made for: what
/// `account::register` stores once the user exists.
pub struct VerifiedSignup {
    handle: Vec<u8>,
    credential: NewCredential,
}

impl VerifiedSignup {
    /// The passkey may be synced between devices (`swk` rather than `hwk`).
    pub fn synced(&self) -> bool {
        self.credential.passkey.be
    }
}

/// Starts a passkey-only sign-up for `email`: the caller checked the registration itself
/// (policy, profile, address free); `context` is what [`finish_signup`] gives back, and
/// only to a response sent with `binding`, where given (the hosted page's interaction).
/// The options carry a fresh user handle, which the account keeps if it is made.
pub async fn start_signup(
    ctx: &TenantContext,
    db: &TenantDb,
    email: &str,
    display: &str,
    context: Value,
    binding: Option<&str>,
) -> Result<CeremonyOptions, ApiError> {
    let handle = tenantry_crypto::random_key::<HANDLE_BYTES>().to_vec();
    let (challenge, state) = relying_party(ctx)?
        .start_passkey_registration(
            &handle,
            email,
            &display_name(ctx, display),
            registration_options(ctx, &[]),
        )
        .map_err(|_| ApiError::internal())?;
    store_challenge(
        db,
        Purpose::Signup,
        None,
        binding,
        &CeremonyState::Signup { state, handle, context },
    )
    .await?;
    options(challenge)
}

/// Verifies the passkey of a sign-up against its spent challenge: the passkey and the
/// `context` given to [`start_signup`].
pub async fn finish_signup(
    ctx: &TenantContext,
    db: &TenantDb,
    binding: Option<&str>,
    credential: &Value,
) -> Result<(VerifiedSignup, Value), ApiError> {
    let client_data = client_data_of(credential).ok_or_else(|| invalid_registration("not a WebAuthn credential"))?;
    let (_, state) = spend_challenge(db, client_data, Purpose::Signup, binding)
        .await
        .map_err(|_| invalid_registration("the challenge is unknown, used or expired"))?;
    let CeremonyState::Signup { state, handle, context } = state else {
        return Err(invalid_registration("the challenge is unknown, used or expired"));
    };
    let credential = verify_registration(ctx, credential, &state)?;
    Ok((VerifiedSignup { handle, credential }, context))
}

/// Stores a new account's handle and passkey (`account::register`, once the user exists).
pub async fn store_signup(db: &TenantDb, user: &User, signup: VerifiedSignup) -> Result<(), ApiError> {
    let handle = db.passkey_handle(user.id, &signup.handle, Utc::now()).await?;
    if handle != signup.handle {
        return Err(ApiError::internal());
    }
    let passkey = store_new(db, user.id, signup.credential, None).await?;
    let event = events::Event::by_user("passkey_added", Outcome::Success, user.id)
        .with_details(serde_json::json!({ "passkey": passkey.id, "synced": passkey.backup_eligible, "signup": true }));
    events::record(db, event).await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Authentication.

/// How a passkey signed someone in.
#[derive(Debug, Clone)]
pub struct Assertion {
    pub user: User,
    pub passkey: Passkey,
    /// The credential may be synced between devices (BE): `swk` rather than `hwk`.
    pub synced: bool,
    /// The authenticator verified the user (UV).
    pub user_verified: bool,
    /// What the caller asked for when the ceremony started.
    pub context: Value,
}

/// Starts a sign-in: options with no allowed credentials (the authenticator offers its
/// discoverable ones) and user verification required, for [`Purpose::Login`]; or the
/// user's own passkeys and user verification preferred, for [`Purpose::SecondFactor`]
/// bound to `binding` (the login's `mfa_token`). `context` comes back with the assertion.
pub async fn start_authentication(
    ctx: &TenantContext,
    db: &TenantDb,
    purpose: Purpose,
    user: Option<&User>,
    binding: Option<&str>,
    context: Value,
) -> Result<CeremonyOptions, ApiError> {
    let keys: Vec<StoredPasskey> = match user {
        Some(user) => db.passkeys(user.id).await?.iter().map(stored).collect(),
        None => Vec::new(),
    };
    let mut opts = AuthenticationOptions::default();
    opts.timeout = CEREMONY_TIMEOUT_MS;
    opts.user_verification = match purpose {
        Purpose::SecondFactor => UserVerificationRequirement::Preferred,
        _ => UserVerificationRequirement::Required,
    };
    let (challenge, state) = relying_party(ctx)?
        .start_passkey_authentication(&keys, opts)
        .map_err(|_| ApiError::internal())?;
    store_challenge(
        db,
        purpose,
        user.map(|u| u.id),
        binding,
        &CeremonyState::Authenticate { state, context },
    )
    .await?;
    options(challenge)
}

/// The one answer for every refused sign-in with a passkey.
fn refused() -> ApiError {
    ApiError::new(ErrorCode::PasskeyRefused, "the passkey was not accepted")
}

/// Completes a sign-in ceremony: the response must answer a live challenge of `purpose`
/// (bound to `binding` where it was), name a passkey of this tenant (of the challenge's
/// user, when it had one) whose owner is active and whose user handle matches, pass every
/// relying-party check and move the counter forward. Every refusal is the same
/// `passkey_refused` and is recorded with its reason.
pub async fn finish_authentication(
    ctx: &TenantContext,
    db: &TenantDb,
    purpose: Purpose,
    binding: Option<&str>,
    credential: &Value,
) -> Result<Assertion, ApiError> {
    match verify_assertion(ctx, db, purpose, binding, credential).await {
        Ok(assertion) => Ok(assertion),
        Err(Failure::Unavailable(e)) => Err(e),
        Err(Failure::Refused { refusal, user }) => {
            let event = events::Event {
                action: "passkey_sign_in",
                outcome: Some(Outcome::Failure),
                user,
                actor: None,
                target: user.map(|id| format!("user:{id}")),
                details: serde_json::json!({ "purpose": purpose.as_str(), "reason": refusal.reason() }),
            };
            events::record(db, event).await;
            Err(refused())
        }
    }
}

/// Counts one call for ceremony options from `ip` ([`OPTIONS_PER_IP`]; 429 past it).
pub async fn count_options(
    accounts: &crate::Accounts,
    ctx: &TenantContext,
    ip: Option<std::net::IpAddr>,
) -> Result<(), ApiError> {
    crate::login::per_ip(accounts, ctx, "passkey_options", ip, OPTIONS_PER_IP)
        .await?
        .into_result()
}

/// Completes a sign-in with a passkey as the first and only factor, behind both front
/// doors: the assertion (for options bound to `binding`, where they were), the tenant's
/// verified-email rule, and the one login decision — which owes nothing more after a
/// user-verified passkey. Answers the login and the context the options were made with.
pub async fn finish_sign_in(
    accounts: &crate::Accounts,
    ctx: &TenantContext,
    db: &TenantDb,
    binding: Option<&str>,
    credential: &Value,
) -> Result<(crate::login::Authentication, Value), ApiError> {
    let assertion = finish_authentication(ctx, db, Purpose::Login, binding, credential).await?;
    let policy = &ctx.entry.tenant.settings.security;
    if policy.require_verified_email && !assertion.user.email_verified {
        return Err(ApiError::new(
            ErrorCode::EmailNotVerified,
            "verify the email address before logging in",
        ));
    }
    let first = crate::login::FirstFactor::Passkey {
        synced: assertion.synced,
    };
    match crate::login::after_first_factor(accounts, ctx, db, assertion.user, first, false, None).await? {
        crate::login::Accepted::Complete(authentication) => Ok((authentication, assertion.context)),
        // A passkey is both factors: nothing more can be owed.
        crate::login::Accepted::SecondFactor { .. } => Err(ApiError::internal()),
    }
}

/// Completes the second step of a login with one of `user`'s passkeys (the challenge was
/// bound to `binding`): the sign-in is recorded as a passed second factor and answered as
/// a password-and-passkey [`Authentication`](crate::login::Authentication).
pub async fn finish_second_factor(
    ctx: &TenantContext,
    db: &TenantDb,
    user: &User,
    binding: &str,
    credential: &Value,
) -> Result<crate::login::Authentication, ApiError> {
    let assertion = finish_authentication(ctx, db, Purpose::SecondFactor, Some(binding), credential).await?;
    // The challenge named `user`, so only their passkeys pass; checked again here because
    // a mix-up would sign in the wrong account.
    if assertion.user.id != user.id {
        return Err(refused());
    }
    let event = events::Event::by_user("second_factor", Outcome::Success, user.id)
        .with_details(serde_json::json!({ "method": "passkey" }));
    events::record(db, event).await;
    Ok(crate::login::Authentication::passkey(
        assertion.user,
        crate::login::Method::PasswordAndPasskey,
        assertion.synced,
    ))
}

enum Failure {
    Refused { refusal: Refusal, user: Option<Uuid> },
    Unavailable(ApiError),
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Self {
        Failure::Refused { refusal, user: None }
    }
}

async fn verify_assertion(
    ctx: &TenantContext,
    db: &TenantDb,
    purpose: Purpose,
    binding: Option<&str>,
    credential: &Value,
) -> Result<Assertion, Failure> {
    let client_data = client_data_of(credential).ok_or(Refusal::Malformed)?;
    let (row, state) = spend_challenge(db, client_data, purpose, binding).await?;
    let CeremonyState::Authenticate { state, context } = state else {
        return Err(Refusal::Challenge.into());
    };
    let parsed: AuthenticationCredential =
        serde_json::from_value(credential.clone()).map_err(|_| Refusal::Malformed)?;
    let credential_id = Passki::base64_decode(&parsed.raw_id).map_err(|_| Refusal::Malformed)?;
    let id_hash = credential_id_hash(&credential_id);
    let passkey = db
        .passkey_by_credential(&id_hash)
        .await
        .map_err(|e| Failure::Unavailable(e.into()))?
        .ok_or(Refusal::UnknownCredential)?;
    let owner = Some(passkey.user_id);
    let refuse = |refusal| Failure::Refused { refusal, user: owner };
    if row.user_id.is_some_and(|u| u != passkey.user_id) {
        return Err(refuse(Refusal::UnknownCredential));
    }
    let result = relying_party(ctx)
        .map_err(Failure::Unavailable)?
        .finish_passkey_authentication(&parsed, &state, &stored(&passkey))
        .map_err(|e| refuse(Refusal::Verification(verification_reason(&e))))?;
    // The handle a discoverable credential returns must be its owner's, in this tenant.
    if let Some(handle) = &result.user_handle {
        let holder = db
            .user_by_passkey_handle(handle)
            .await
            .map_err(|e| Failure::Unavailable(e.into()))?;
        if holder != Some(passkey.user_id) {
            return Err(refuse(Refusal::WrongUser));
        }
    }
    let auth_data =
        Passki::base64_decode(&parsed.response.authenticator_data).map_err(|_| refuse(Refusal::Malformed))?;
    let flags = *auth_data.get(32).ok_or(refuse(Refusal::Malformed))?;
    let backup_eligible = flags & FLAG_BE != 0;
    // BE is fixed when the credential is made (WebAuthn §7.2 step 18).
    if backup_eligible != passkey.backup_eligible {
        return Err(refuse(Refusal::Verification("backup_flags")));
    }
    let used = PasskeyUse {
        sign_count: i64::from(result.counter),
        backup_state: flags & FLAG_BS != 0,
        at: Utc::now(),
    };
    if !db
        .record_passkey_use(passkey.id, used)
        .await
        .map_err(|e| Failure::Unavailable(e.into()))?
    {
        return Err(refuse(Refusal::CounterRegression));
    }
    let user = tenantry_tenancy::users::active_user(ctx, db, passkey.user_id)
        .await
        .map_err(Failure::Unavailable)?
        .ok_or(refuse(Refusal::WrongUser))?;
    Ok(Assertion {
        user,
        passkey,
        synced: backup_eligible,
        user_verified: flags & FLAG_UV != 0,
        context,
    })
}

// ---------------------------------------------------------------------------------------
// Management.

/// The user's passkeys.
pub async fn list(db: &TenantDb, user_id: Uuid) -> Result<Vec<Passkey>, ApiError> {
    Ok(db.passkeys(user_id).await?)
}

/// Renames one of the user's passkeys: 404 when they have no such passkey.
pub async fn rename(db: &TenantDb, user_id: Uuid, id: Uuid, name: &str) -> Result<Passkey, ApiError> {
    let name = check_name(name)?;
    if !db.rename_passkey(user_id, id, &name).await? {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "no passkey of this account has this id",
        ));
    }
    db.passkeys(user_id)
        .await?
        .into_iter()
        .find(|k| k.id == id)
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "no passkey of this account has this id"))
}

/// Removes one of the user's passkeys: 404 when they have no such passkey; 409
/// `last_way_in` when it is the account's only way to sign in (no password, no linked
/// upstream identity, no other passkey). `by_admin` only changes the recorded event.
pub async fn remove(db: &TenantDb, user_id: Uuid, id: Uuid, by_admin: bool) -> Result<(), ApiError> {
    use tenantry_dataplane::UserRepository;
    let keys = db.passkeys(user_id).await?;
    if !keys.iter().any(|k| k.id == id) {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "no passkey of this account has this id",
        ));
    }
    if !by_admin && keys.len() == 1 {
        let has_password = db.password(user_id).await?.is_some();
        let has_identity = !db.identities_of(user_id).await?.is_empty();
        if !has_password && !has_identity {
            return Err(ApiError::new(
                ErrorCode::LastWayIn,
                "this passkey is the account's only way to sign in; add another first",
            ));
        }
    }
    if !db.delete_passkey(user_id, id).await? {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "no passkey of this account has this id",
        ));
    }
    let event = events::Event::by_user("passkey_removed", Outcome::Success, user_id)
        .with_details(serde_json::json!({ "passkey": id, "by_admin": by_admin }));
    events::record(db, event).await;
    Ok(())
}

/// Whether the user has a passkey (which then counts as an enrolled second factor).
pub async fn has_passkey(db: &TenantDb, user_id: Uuid) -> Result<bool, ApiError> {
    Ok(db.count_passkeys(user_id).await? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(check_name("  Laptop  ").unwrap(), "Laptop");
        assert!(check_name("").is_err());
        assert!(check_name("   ").is_err());
        assert!(check_name(&"x".repeat(MAX_NAME_CHARS + 1)).is_err());
        assert!(check_name(&"é".repeat(MAX_NAME_CHARS)).is_ok());
        assert!(check_name("bad\u{7}name").is_err());
    }
}
