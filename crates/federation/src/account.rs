//! An upstream identity mapped to one account of the tenant.
//!
//! A (provider, subject) pair seen before signs in its linked account. A new pair is
//! linked to the account with the same email only when the upstream asserts the email
//! verified AND the provider is trusted for that (`link_verified_email`); any other match
//! by email is [`Resolved::ProveExisting`]: the user signs in to that account (password,
//! and second factor if enrolled) before the link is made, so an upstream that lets anyone
//! claim an address cannot take an account over. No match at all creates the account
//! when the tenant allows registration (just-in-time), with the profile the claim mapping
//! gives.

use serde_json::Value;
use tenantry_accounts::Accounts;
use tenantry_accounts::events::{self, Event};
use tenantry_accounts::login::{Accepted, FirstFactor, after_first_factor};
use tenantry_controlplane::model::SocialProvider;
use tenantry_dataplane::model::{NewUser, User};
use tenantry_dataplane::{DbError, MfaRepository, Outcome, TenantDb, UserRepository};
use tenantry_errors::{ApiError, ErrorCode};
use tenantry_tenancy::TenantContext;
use tenantry_tenancy::users::{active_user, is_active};

use crate::UpstreamIdentity;

/// Where an upstream sign-in leads.
#[derive(Debug)]
pub enum Resolved {
    /// The identity's account: linked before, linked now by a verified email, or created
    /// now.
    Account(User),
    /// An account has the upstream's email, and may be linked only once its owner proves
    /// it.
    ProveExisting(User),
}

/// Finds or makes the account of `identity` (see the module's rules).
pub async fn resolve(
    ctx: &TenantContext,
    db: &TenantDb,
    provider: &SocialProvider,
    identity: &UpstreamIdentity,
) -> Result<Resolved, ApiError> {
    if let Some(linked) = db.identity(&provider.id, &identity.subject).await? {
        return match active_user(ctx, db, linked.user_id).await? {
            Some(user) => Ok(Resolved::Account(user)),
            None => Err(ApiError::new(ErrorCode::UserDisabled, "the account is disabled")),
        };
    }
    let email = identity.email.as_deref().filter(|e| !e.is_empty()).ok_or_else(|| {
        ApiError::new(
            ErrorCode::UpstreamInvalidResponse,
            "the provider gave no email address, which a new account needs (ask for the `email` scope)",
        )
    })?;
    let existing = match db.user_by_email(email, &ctx.custom_fields()).await {
        Ok(user) => user,
        Err(DbError::Invalid(_)) => {
            return Err(ApiError::new(
                ErrorCode::UpstreamInvalidResponse,
                "the provider's email address is not valid",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(user) = existing {
        if !is_active(&user) {
            return Err(ApiError::new(ErrorCode::UserDisabled, "the account is disabled"));
        }
        if provider.link_verified_email && identity.email_verified {
            let email = identity.email.as_deref();
            link(db, user.id, &provider.id, &identity.subject, email, "verified_email").await?;
            return Ok(Resolved::Account(user));
        }
        return Ok(Resolved::ProveExisting(user));
    }
    if !ctx.entry.tenant.settings.security.registration_enabled {
        return Err(ApiError::new(
            ErrorCode::RegistrationDisabled,
            "this tenant does not create accounts at a first sign-in (registration is off)",
        ));
    }
    let new = new_user(ctx, provider, identity, email);
    tenantry_dataplane::users::profile::check_new_user(&new)?;
    let user = match db.create_user(new, &ctx.custom_fields()).await {
        Ok(user) => user,
        // Another sign-in created it a moment ago: that account needs proving like any.
        Err(DbError::Conflict(_)) => {
            return Err(ApiError::new(
                ErrorCode::EmailTaken,
                "an account with this email already exists",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let email = identity.email.as_deref();
    if let Err(e) = link(db, user.id, &provider.id, &identity.subject, email, "registered").await {
        // No account without its way in.
        let _ = db.delete_user(user.id).await;
        return Err(e);
    }
    Ok(Resolved::Account(user))
}

/// Links the upstream identity (`provider`, `subject`) to `user` (after a proof, or by
/// [`resolve`]'s rules) and records it.
pub async fn link(
    db: &TenantDb,
    user: uuid::Uuid,
    provider: &str,
    subject: &str,
    email: Option<&str>,
    how: &str,
) -> Result<(), ApiError> {
    match db.link_identity(user, provider, subject, email).await {
        Ok(_) => {}
        Err(DbError::Conflict(_)) => {
            return Err(ApiError::new(
                ErrorCode::AlreadyExists,
                "this upstream identity is already linked to an account",
            ));
        }
        Err(e) => return Err(e.into()),
    }
    let event = Event::by_user("identity_linked", Outcome::Success, user)
        .with_details(serde_json::json!({ "provider": provider, "how": how }));
    events::record(db, event).await;
    Ok(())
}

/// The account a first sign-in creates: the email (verified as the upstream says), and the
/// profile and custom fields the claim mapping gives (the standard claims by default).
fn new_user(ctx: &TenantContext, provider: &SocialProvider, identity: &UpstreamIdentity, email: &str) -> NewUser {
    let text = |field: &str| -> Option<String> {
        let claim = provider.claim_mapping.get(field).map_or(field, String::as_str);
        match identity.claims.get(claim) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        }
    };
    let mut new = NewUser {
        email: email.to_owned(),
        email_verified: identity.email_verified,
        username: provider.claim_mapping.get("username").and(text("username")),
        given_name: text("given_name"),
        family_name: text("family_name"),
        name: text("name"),
        picture: text("picture"),
        locale: text("locale"),
        phone_number: text("phone_number"),
        metadata: None,
        custom: Default::default(),
    };
    for field in &ctx.entry.tenant.settings.custom_fields {
        let key = format!("custom.{}", field.name);
        if let Some(value) = provider
            .claim_mapping
            .get(&key)
            .and_then(|claim| identity.claims.get(claim))
        {
            new.custom.insert(field.name.clone(), value.clone());
        }
    }
    new
}

/// The sign-in of `user`, whose upstream identity just came back from `provider`: what
/// the tenant still asks (a verified email; its second factor, unless this device is
/// trusted to skip it or the tenant trusts the upstream's own multi-factor
/// authentication), as the password login decides it.
pub async fn sign_in(
    accounts: &Accounts,
    ctx: &TenantContext,
    db: &TenantDb,
    user: User,
    provider: &SocialProvider,
    identity: &UpstreamIdentity,
    device: Option<&str>,
) -> Result<Accepted, ApiError> {
    let policy = &ctx.entry.tenant.settings.security;
    if policy.require_verified_email && !user.email_verified {
        return Err(ApiError::new(
            ErrorCode::EmailNotVerified,
            "the account's email address must be verified before it can sign in",
        ));
    }
    let first = FirstFactor::Upstream {
        provider: &provider.id,
        mfa: provider.trust_upstream_mfa && identity.amr.iter().any(|m| m == "mfa"),
    };
    let totp_enrolled = db.totp(user.id).await?.is_some_and(|t| t.confirmed_at.is_some());
    after_first_factor(accounts, ctx, db, user, first, totp_enrolled, device).await
}

/// Unlinks `user`'s identities at `provider`, unless the account would be left without a
/// way in (no password, no identity at another provider, no passkey): 409 `last_way_in`.
pub async fn unlink(db: &TenantDb, user: uuid::Uuid, provider: &str) -> Result<(), ApiError> {
    let identities = db.identities_of(user).await?;
    if !identities.iter().any(|i| i.provider == provider) {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "no identity of this account at that provider",
        ));
    }
    let another_identity = identities.iter().any(|i| i.provider != provider);
    if !another_identity
        && db.password(user).await?.is_none()
        && !tenantry_accounts::passkeys::has_passkey(db, user).await?
    {
        return Err(ApiError::new(
            ErrorCode::LastWayIn,
            "this is the account's only way to sign in: set a password, add a passkey or link another provider first",
        ));
    }
    db.unlink_identities(user, provider).await?;
    let event = Event::by_user("identity_unlinked", Outcome::Success, user)
        .with_details(serde_json::json!({ "provider": provider }));
    events::record(db, event).await;
    Ok(())
}
