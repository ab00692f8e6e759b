//! The one active-user rule: a user may sign in, hold working tokens and receive account
//! mail only while their status is `active`, or `disabled` with a `disabled_until` that
//! has passed (a suspension ends by itself). Every lookup of a user who acts (a login, a
//! grant, a bearer token, a second factor, an email link) goes through here.

use tenantry_dataplane::model::{User, UserStatus};
use tenantry_dataplane::{DbError, TenantDb, UserRepository};

use tenantry_errors::ApiError;

use crate::TenantContext;

/// Whether `user` may act: not disabled, or suspended until a time now past.
pub fn is_active(user: &User) -> bool {
    match user.status {
        UserStatus::Active => true,
        UserStatus::Disabled => user.disabled_until.is_some_and(|until| until <= chrono::Utc::now()),
    }
}

/// The user with this id, if they exist and are active.
pub async fn active_user(ctx: &TenantContext, db: &TenantDb, id: uuid::Uuid) -> Result<Option<User>, ApiError> {
    Ok(db.user_by_id(id, &ctx.custom_fields()).await?.filter(is_active))
}

/// The user with this email, if they exist and are active; a malformed address is no user.
pub async fn active_user_by_email(ctx: &TenantContext, db: &TenantDb, email: &str) -> Result<Option<User>, ApiError> {
    match db.user_by_email(email, &ctx.custom_fields()).await {
        Ok(user) => Ok(user.filter(is_active)),
        Err(DbError::Invalid(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
