//! Admin operations on a tenant's users: create (an optional password under the tenant's
//! policy, an optional verification mail whose failure undoes the creation), update the
//! profile, set a password, delete, mail a verification or reset link, disable (every
//! session, refresh token and trusted device ends) and enable. Each is one audited admin
//! write through [`AdminService::perform`]; input is checked before anything is written.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};
use tenantry_accounts::Accounts;
use tenantry_accounts::account::NewPassword;
use tenantry_dataplane::UserRepository;
use tenantry_dataplane::model::{NewUser, ProfileUpdate, User};
use tenantry_errors::{ApiError, ErrorCode};
use tenantry_tenancy::{Capability, TenantContext};
use uuid::Uuid;

use crate::{Actor, AdminService, Audit};

/// `POST /v1/admin/tenants/{slug}/users`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub email: String,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub email_verified: bool,
    pub username: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub name: Option<String>,
    pub picture: Option<String>,
    pub locale: Option<String>,
    pub phone_number: Option<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub custom: BTreeMap<String, Value>,
    /// Mail the new user a verification link (when `email_verified` is false); a mail that
    /// does not leave undoes the creation, as at registration.
    #[serde(default)]
    pub send_verification_email: bool,
}

/// A profile change (any of `ProfileUpdate`'s fields) and optional custom field values;
/// absent fields stay as they are.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct UpdateUser {
    #[serde(flatten)]
    pub profile: ProfileUpdate,
    #[serde(default)]
    pub custom: Option<BTreeMap<String, Value>>,
}

/// Which link an administrator mails a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserLink {
    /// A new verification link (48 h); 409 when the address is already verified.
    Verification,
    /// A password-reset link (1 h), e.g. for an account made without a password.
    Reset,
}

/// The user `id` of the tenant (404 for an unknown or malformed id).
pub async fn existing(ctx: &TenantContext, id: &str) -> Result<User, ApiError> {
    let db = ctx.db().await?;
    db.user_by_id(user_id(id)?, &ctx.custom_fields())
        .await?
        .ok_or_else(|| not_found(id))
}

/// Whether the user has a password (shown beside the user; never the hash).
pub async fn has_password(ctx: &TenantContext, user: &User) -> Result<bool, ApiError> {
    Ok(ctx.db().await?.password(user.id).await?.is_some())
}

fn user_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| not_found(id))
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("no user `{}`", tenantry_errors::printable(id)),
    )
}

fn audit(action: &'static str, ctx: &TenantContext, user: Uuid) -> Audit {
    Audit::new(action, Some(&ctx.entry.tenant.slug))
        .with_target(format!("user:{user}"))
        .with_details(json!({ "user_id": user }))
}

impl AdminService {
    pub async fn create_user(
        &self,
        actor: Actor,
        accounts: &Accounts,
        ctx: &TenantContext,
        input: CreateUser,
    ) -> Result<User, ApiError> {
        let db = ctx.db().await?;
        let new = NewUser {
            email: input.email,
            email_verified: input.email_verified,
            username: input.username,
            given_name: input.given_name,
            family_name: input.family_name,
            name: input.name,
            picture: input.picture,
            locale: input.locale,
            phone_number: input.phone_number,
            metadata: input.metadata,
            custom: input.custom,
        };
        // The profile is refused before the password costs a hash.
        tenantry_dataplane::users::profile::check_new_user(&new)?;
        let password = match &input.password {
            Some(password) => Some(NewPassword::prepare(accounts, ctx, &new.email, password, "password").await?),
            None => None,
        };
        let mail = input.send_verification_email && !input.email_verified;
        if mail {
            // Refused before anything is made.
            ctx.require(Capability::Email)?;
        }
        let create = async {
            let user = db.create_user(new, &ctx.custom_fields()).await?;
            if let Some(password) = password {
                password.store(&db, user.id).await?;
            }
            if mail {
                tenantry_accounts::account_email::verify_new_account(accounts, ctx, &db, &user, None).await?;
            }
            Ok::<_, ApiError>(user)
        };
        self.perform(actor, create, |user| audit("create_user", ctx, user.id))
            .await
    }

    /// Both parts are checked before either is written; answers the user as it is now.
    pub async fn update_user(
        &self,
        actor: Actor,
        ctx: &TenantContext,
        id: &str,
        update: UpdateUser,
    ) -> Result<User, ApiError> {
        let user = existing(ctx, id).await?;
        let db = ctx.db().await?;
        tenantry_dataplane::users::profile::check_update(&update.profile, update.custom.as_ref())?;
        let write = async {
            db.update_profile(user.id, update.profile).await?;
            if let Some(custom) = &update.custom {
                db.set_custom_fields(user.id, custom, &ctx.custom_fields()).await?;
            }
            Ok::<_, ApiError>(())
        };
        self.perform(actor, write, |_| audit("update_user", ctx, user.id))
            .await?;
        existing(ctx, id).await
    }

    /// Checked and hashed before the audited write; a reset link mailed before must not
    /// undo what the administrator set (`NewPassword::store` spends them).
    pub async fn set_user_password(
        &self,
        actor: Actor,
        accounts: &Accounts,
        ctx: &TenantContext,
        id: &str,
        password: &str,
    ) -> Result<(), ApiError> {
        let user = existing(ctx, id).await?;
        let password = NewPassword::prepare(accounts, ctx, &user.email, password, "password").await?;
        let db = ctx.db().await?;
        self.perform(actor, password.store(&db, user.id), |_| {
            audit("set_user_password", ctx, user.id)
        })
        .await
    }

    pub async fn delete_user(&self, actor: Actor, ctx: &TenantContext, id: &str) -> Result<(), ApiError> {
        let user = user_id(id)?;
        let delete = async {
            match ctx.db().await?.delete_user(user).await? {
                true => Ok(()),
                false => Err(not_found(id)),
            }
        };
        self.perform(actor, delete, |_| audit("delete_user", ctx, user)).await
    }

    /// Removes one of the user's passkeys (also the last one: an administrator may leave
    /// an account with no way in; the user then needs a reset link or a new password).
    pub async fn remove_user_passkey(
        &self,
        actor: Actor,
        ctx: &TenantContext,
        id: &str,
        passkey: &str,
    ) -> Result<(), ApiError> {
        let user = existing(ctx, id).await?.id;
        let passkey_id = Uuid::parse_str(passkey)
            .map_err(|_| ApiError::new(ErrorCode::NotFound, "no passkey of this user has this id"))?;
        let remove = async {
            let db = ctx.db().await?;
            tenantry_accounts::passkeys::remove(&db, user, passkey_id, true).await
        };
        self.perform(actor, remove, |_| {
            audit("remove_user_passkey", ctx, user).with_details(json!({ "user_id": user, "passkey_id": passkey_id }))
        })
        .await
    }

    /// Mails the user `link` now: done once the SMTP server took it; 501 without SMTP
    /// settings, 409 for a disabled user (or, for a verification, a verified address).
    pub async fn send_user_link(
        &self,
        actor: Actor,
        accounts: &Accounts,
        ctx: &TenantContext,
        id: &str,
        link: UserLink,
    ) -> Result<(), ApiError> {
        ctx.require(Capability::Email)?;
        let user = existing(ctx, id).await?;
        if !tenantry_tenancy::users::is_active(&user) {
            return Err(ApiError::new(
                ErrorCode::UserDisabled,
                "the user is disabled; enable it first",
            ));
        }
        let db = ctx.db().await?;
        let (send, action) = match link {
            UserLink::Verification if user.email_verified => {
                return Err(ApiError::new(
                    ErrorCode::EmailAlreadyVerified,
                    "the user's email address is already verified",
                ));
            }
            UserLink::Verification => (
                tenantry_accounts::account_email::start_verification(accounts, ctx, &db, &user, None).await,
                "send_verification_email",
            ),
            UserLink::Reset => (
                tenantry_accounts::account_email::send_reset(accounts, ctx, &db, &user, None).await,
                "send_reset_email",
            ),
        };
        self.perform(actor, std::future::ready(send), |_| audit(action, ctx, user.id))
            .await
    }

    /// The user can no longer sign in; every session, refresh token and trusted device
    /// ends now (access tokens already issued live out their short lifetime). `reason`
    /// is for other administrators (at most 500 characters).
    pub async fn disable_user(
        &self,
        actor: Actor,
        ctx: &TenantContext,
        id: &str,
        reason: Option<&str>,
        until: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<User, ApiError> {
        if reason.is_some_and(|r| r.chars().count() > 500) {
            return Err(ApiError::field("reason", "must be at most 500 characters"));
        }
        let now = chrono::Utc::now();
        if until.is_some_and(|until| until <= now) {
            return Err(ApiError::field("until", "must be in the future"));
        }
        let user = existing(ctx, id).await?;
        let db = ctx.db().await?;
        let disable = async {
            db.disable_user(user.id, reason, until).await?;
            tenantry_accounts::login::sign_out_everywhere(&db, user.id, now).await
        };
        self.perform(actor, disable, |_| {
            let mut event = audit("disable_user", ctx, user.id);
            if let serde_json::Value::Object(details) = &mut event.details {
                details.insert("reason".into(), serde_json::json!(reason));
                details.insert("until".into(), serde_json::json!(until));
            }
            event
        })
        .await?;
        existing(ctx, id).await
    }

    /// A disabled user may sign in again.
    pub async fn enable_user(&self, actor: Actor, ctx: &TenantContext, id: &str) -> Result<User, ApiError> {
        let user = existing(ctx, id).await?;
        let db = ctx.db().await?;
        self.perform(actor, db.enable_user(user.id), |_| audit("enable_user", ctx, user.id))
            .await?;
        existing(ctx, id).await
    }
}
