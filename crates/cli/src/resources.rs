//! Admin subcommands for roles, scopes, users' sign-ins, the audit trails and installation
//! admins: each is one admin API call (`admin::Api`), shown as a table or JSON.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use reqwest::Method;
use tenantry_admin::api::{AdminChange, RoleInput, ScopeInput};
use tenantry_controlplane::model::AdminAccess;

use crate::admin::{Api, ApiArgs, body, reach_of, read_json, seg};

#[derive(Subcommand)]
pub enum RoleCommand {
    /// A tenant's roles.
    List {
        #[arg(long)]
        tenant: String,
    },
    Show {
        #[arg(long)]
        tenant: String,
        name: String,
    },
    /// Create or replace a role.
    Put {
        #[arg(long)]
        tenant: String,
        name: String,
        #[arg(long, default_value = "")]
        description: String,
        /// A permission the role carries (`invoices:read`); repeat for several.
        #[arg(long = "permission", value_name = "PERMISSION")]
        permissions: Vec<String>,
    },
    Delete {
        #[arg(long)]
        tenant: String,
        name: String,
    },
    /// Give a user a role.
    Assign {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        user: String,
        name: String,
    },
    /// Take a role from a user.
    Unassign {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        user: String,
        name: String,
    },
    /// A user's roles and the permissions they carry.
    OfUser {
        #[arg(long)]
        tenant: String,
        user: String,
    },
}

#[derive(Subcommand)]
pub enum ScopeCommand {
    /// A tenant's own scopes (and the built-in ones).
    List {
        #[arg(long)]
        tenant: String,
    },
    Show {
        #[arg(long)]
        tenant: String,
        name: String,
    },
    /// Create or replace a scope from a JSON file (`{"description", "claims": [...]}`).
    Put {
        #[arg(long)]
        tenant: String,
        name: String,
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    Delete {
        #[arg(long)]
        tenant: String,
        name: String,
    },
}

#[derive(Subcommand)]
pub enum SessionCommand {
    /// A user's live sessions.
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        user: String,
    },
    /// End one session (by its id, the `sid`) with its refresh tokens.
    Revoke {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        user: String,
        id: String,
    },
    /// End every session of a user.
    RevokeAll {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        user: String,
    },
    /// A user's refresh-token families.
    Tokens {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        user: String,
    },
    /// A user's consents.
    Consents {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        user: String,
    },
    /// Revoke every refresh token of a client.
    RevokeClient {
        #[arg(long)]
        tenant: String,
        client_id: String,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// The installation's trail (admin actions, admin sign-ins).
    Admin {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        action: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        after: Option<String>,
    },
    /// A tenant's security events (sign-ins, lockouts, second factors, ...).
    Tenant {
        slug: String,
        #[arg(long)]
        action: Option<String>,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        after: Option<String>,
    },
}

/// The admin-API part of `tenantry admin` (beside the offline `admin create`).
#[derive(Subcommand)]
pub enum AdminApiCommand {
    /// The admins within reach (through the admin API).
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
    Show {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Change an admin's reach and access.
    Update {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
        /// Reach only this tenant; repeat for several.
        #[arg(long = "tenant", value_name = "SLUG")]
        tenants: Vec<String>,
        #[arg(long, conflicts_with = "tenants")]
        global: bool,
        #[arg(long, conflicts_with = "read_write")]
        read_only: bool,
        #[arg(long)]
        read_write: bool,
    },
    Delete {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// A new one-time password (printed once); TOTP cleared; sessions ended.
    ResetCredentials {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The calling credential.
    Me {
        #[command(flatten)]
        api: ApiArgs,
    },
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    query.finish()
}

pub async fn role(args: ApiArgs, command: RoleCommand) -> anyhow::Result<()> {
    let api = Api::new(args).await?;
    let roles = |tenant: &str| format!("/v1/admin/tenants/{}/roles", seg(tenant));
    let user_roles = |tenant: &str, user: &str| format!("/v1/admin/tenants/{}/users/{}/roles", seg(tenant), seg(user));
    match command {
        RoleCommand::List { tenant } => api.show(Method::GET, &roles(&tenant), None, "").await,
        RoleCommand::Show { tenant, name } => {
            api.show(Method::GET, &format!("{}/{}", roles(&tenant), seg(&name)), None, "")
                .await
        }
        RoleCommand::Put {
            tenant,
            name,
            description,
            permissions,
        } => {
            let role = RoleInput {
                description,
                permissions,
            };
            api.show(
                Method::PUT,
                &format!("{}/{}", roles(&tenant), seg(&name)),
                body(role)?,
                "",
            )
            .await
        }
        RoleCommand::Delete { tenant, name } => {
            let path = format!("{}/{}", roles(&tenant), seg(&name));
            api.show(Method::DELETE, &path, None, &format!("deleted role `{name}`"))
                .await
        }
        RoleCommand::Assign { tenant, user, name } => {
            let path = format!("{}/{}", user_roles(&tenant, &user), seg(&name));
            api.show(Method::PUT, &path, None, &format!("assigned role `{name}`"))
                .await
        }
        RoleCommand::Unassign { tenant, user, name } => {
            let path = format!("{}/{}", user_roles(&tenant, &user), seg(&name));
            api.show(Method::DELETE, &path, None, &format!("took role `{name}`"))
                .await
        }
        RoleCommand::OfUser { tenant, user } => api.show(Method::GET, &user_roles(&tenant, &user), None, "").await,
    }
}

pub async fn scope(args: ApiArgs, command: ScopeCommand) -> anyhow::Result<()> {
    let api = Api::new(args).await?;
    let scopes = |tenant: &str| format!("/v1/admin/tenants/{}/scopes", seg(tenant));
    match command {
        ScopeCommand::List { tenant } => api.show(Method::GET, &scopes(&tenant), None, "").await,
        ScopeCommand::Show { tenant, name } => {
            api.show(Method::GET, &format!("{}/{}", scopes(&tenant), seg(&name)), None, "")
                .await
        }
        ScopeCommand::Put { tenant, name, file } => {
            let path = format!("{}/{}", scopes(&tenant), seg(&name));
            let scope: ScopeInput = serde_json::from_value(read_json(&file)?)
                .with_context(|| format!("{} is not a scope (`description`, `claims`)", file.display()))?;
            api.show(Method::PUT, &path, body(scope)?, "").await
        }
        ScopeCommand::Delete { tenant, name } => {
            let path = format!("{}/{}", scopes(&tenant), seg(&name));
            api.show(Method::DELETE, &path, None, &format!("deleted scope `{name}`"))
                .await
        }
    }
}

pub async fn session(args: ApiArgs, command: SessionCommand) -> anyhow::Result<()> {
    let api = Api::new(args).await?;
    let user_path =
        |tenant: &str, user: &str, what: &str| format!("/v1/admin/tenants/{}/users/{}/{what}", seg(tenant), seg(user));
    match command {
        SessionCommand::List { tenant, user } => {
            api.show(Method::GET, &user_path(&tenant, &user, "sessions"), None, "")
                .await
        }
        SessionCommand::Revoke { tenant, user, id } => {
            let path = format!("{}/{}", user_path(&tenant, &user, "sessions"), seg(&id));
            api.show(Method::DELETE, &path, None, "session ended").await
        }
        SessionCommand::RevokeAll { tenant, user } => {
            api.show(Method::DELETE, &user_path(&tenant, &user, "sessions"), None, "")
                .await
        }
        SessionCommand::Tokens { tenant, user } => {
            api.show(Method::GET, &user_path(&tenant, &user, "refresh-tokens"), None, "")
                .await
        }
        SessionCommand::Consents { tenant, user } => {
            api.show(Method::GET, &user_path(&tenant, &user, "consents"), None, "")
                .await
        }
        SessionCommand::RevokeClient { tenant, client_id } => {
            let path = format!(
                "/v1/admin/tenants/{}/clients/{}/refresh-tokens",
                seg(&tenant),
                seg(&client_id)
            );
            api.show(Method::DELETE, &path, None, "").await
        }
    }
}

pub async fn audit(args: ApiArgs, command: AuditCommand) -> anyhow::Result<()> {
    let api = Api::new(args).await?;
    let limit = |l: Option<u32>| l.map(|l| l.to_string());
    match command {
        AuditCommand::Admin {
            tenant,
            action,
            limit: l,
            after,
        } => {
            let q = query(&[
                ("tenant", tenant),
                ("action", action),
                ("limit", limit(l)),
                ("after", after),
            ]);
            api.show(Method::GET, &format!("/v1/admin/audit?{q}"), None, "").await
        }
        AuditCommand::Tenant {
            slug,
            action,
            user,
            limit: l,
            after,
        } => {
            let q = query(&[
                ("action", action),
                ("user", user),
                ("limit", limit(l)),
                ("after", after),
            ]);
            api.show(
                Method::GET,
                &format!("/v1/admin/tenants/{}/audit?{q}", seg(&slug)),
                None,
                "",
            )
            .await
        }
    }
}

pub async fn admins(command: AdminApiCommand) -> anyhow::Result<()> {
    let one = |id: &str| format!("/v1/admin/admins/{}", seg(id));
    match command {
        AdminApiCommand::List { api } => {
            let api = Api::new(api).await?;
            api.show(Method::GET, "/v1/admin/admins", None, "").await
        }
        AdminApiCommand::Show { id, api } => Api::new(api).await?.show(Method::GET, &one(&id), None, "").await,
        AdminApiCommand::Update {
            id,
            api,
            tenants,
            global,
            read_only,
            read_write,
        } => {
            let change = AdminChange {
                name: None,
                reach: reach_of(global, tenants),
                access: match (read_only, read_write) {
                    (true, _) => Some(AdminAccess::ReadOnly),
                    (_, true) => Some(AdminAccess::ReadWrite),
                    _ => None,
                },
            };
            Api::new(api)
                .await?
                .show(Method::PATCH, &one(&id), body(change)?, "")
                .await
        }
        AdminApiCommand::Delete { id, api } => {
            Api::new(api)
                .await?
                .show(Method::DELETE, &one(&id), None, "admin deleted")
                .await
        }
        AdminApiCommand::ResetCredentials { id, api } => {
            let path = format!("{}/reset-credentials", one(&id));
            Api::new(api).await?.show(Method::POST, &path, None, "").await
        }
        AdminApiCommand::Me { api } => Api::new(api).await?.show(Method::GET, "/v1/admin/me", None, "").await,
    }
}
