//! Commands that work on FS_ROOT directly, before a server runs there: `init` and
//! `admin create`. They write through the same `Writer` the server uses; run them while no
//! server uses that FS_ROOT (a running server does not see files written behind it).

use std::io::BufRead;
use std::sync::Arc;

use tenantry_admin::admins::{NewAdmin, make_admin};
use tenantry_admin::installation::{self, FirstAdmin};
use tenantry_config::{Config, Overrides};
use tenantry_controlplane::model::{AdminAccess, AdminReach};
use tenantry_controlplane::{Command, ControlPlane, FsStore, StandaloneWriter, Writer};

/// Who the first admin of `tenantry init` is when `--admin-email` is not given.
pub const DEFAULT_FIRST_ADMIN: &str = "admin@localhost";

/// Opens FS_ROOT's control plane for an offline write — refused on a cluster member, whose
/// tree may change only through Raft (the write would exist on this node alone).
fn open_offline(config: &Config) -> anyhow::Result<Arc<ControlPlane>> {
    if tenantry_cluster::fs_root_is_clustered(&config.fs_root) {
        anyhow::bail!(
            "{} belongs to a cluster member: offline writes would exist on this node alone; \
             use the admin API (any member forwards writes to the leader)",
            config.fs_root.display()
        );
    }
    Ok(Arc::new(ControlPlane::open(FsStore::new(&config.fs_root))?))
}

/// `tenantry init`: system keys, the first admin (one-time password, shown once) and the
/// default tenant.
pub async fn init(overrides: Overrides, admin_email: Option<String>) -> anyhow::Result<()> {
    let config = Config::load(&overrides)?;
    tenantry_config::ensure_writable_dir(&config.fs_root)?;
    // Proves the master key is usable before anything is written.
    let secrets = tenantry_config::load_secretbox(|name| std::env::var(name).ok(), &config.fs_root, false)?;
    let cp = open_offline(&config)?;
    let writer = StandaloneWriter::new(cp.clone());
    let email = admin_email.as_deref().unwrap_or(DEFAULT_FIRST_ADMIN);
    let first_admin = FirstAdmin::OneTimePassword { email };
    let installed =
        installation::ensure_installation(&cp, &writer, &secrets, config.default_tenant.as_deref(), first_admin)
            .await?;
    match installed.admin_password {
        Some((email, password)) => {
            println!("first admin: {email}");
            println!("one-time password (shown once; replaced at the first sign-in): {password}");
            println!("sign in with `tenantry login --email {email}`; it also sets up TOTP");
        }
        None => println!("an admin already exists: no first admin was made"),
    }
    if installed.default_tenant_created {
        println!(
            "created tenant `{}`",
            config.default_tenant.as_deref().unwrap_or_default()
        );
    }
    println!("FS_ROOT {} is ready", config.fs_root.display());
    Ok(())
}

/// `tenantry admin create`'s arguments.
#[derive(clap::Args)]
pub struct CreateAdmin {
    #[arg(long)]
    pub email: String,
    /// Display name (default: the email).
    #[arg(long)]
    pub name: Option<String>,
    /// Read the admin's password from the first line of standard input; without it a
    /// one-time password is made and printed once.
    #[arg(long)]
    pub password_stdin: bool,
    /// Reach every tenant (the default unless `--tenant` is given).
    #[arg(long, conflicts_with = "tenants")]
    pub global: bool,
    /// Reach only this tenant; repeat for several.
    #[arg(long = "tenant", value_name = "SLUG")]
    pub tenants: Vec<String>,
    /// Read-only access.
    #[arg(long)]
    pub read_only: bool,
}

/// `tenantry admin create`: adds an admin to FS_ROOT's control plane.
pub async fn create_admin(overrides: Overrides, args: CreateAdmin) -> anyhow::Result<()> {
    let config = Config::load(&overrides)?;
    tenantry_config::ensure_writable_dir(&config.fs_root)?;
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let line = line.trim_end_matches(['\r', '\n']).to_owned();
        anyhow::ensure!(!line.is_empty(), "--password-stdin: standard input has no password");
        Some(line)
    } else {
        None
    };
    let input = NewAdmin {
        email: args.email,
        name: args.name,
        password,
        reach: if args.tenants.is_empty() {
            AdminReach::Global
        } else {
            AdminReach::Tenants(args.tenants)
        },
        access: if args.read_only {
            AdminAccess::ReadOnly
        } else {
            AdminAccess::ReadWrite
        },
    };
    let (admin, one_time) = make_admin(input, chrono::Utc::now()).await.map_err(problem)?;
    let cp = open_offline(&config)?;
    let writer = StandaloneWriter::new(cp);
    let (id, email) = (admin.id, admin.email.clone().unwrap_or_default());
    writer
        .write(Command::PutAdmin { admin })
        .await
        .map_err(|e| problem(e.into()))?;
    println!("admin {email} created (id {id})");
    if let Some(password) = one_time {
        println!("one-time password (shown once; replaced at the first sign-in): {password}");
    }
    Ok(())
}

/// An API error as a CLI error: its detail, then each field.
fn problem(e: tenantry_errors::ApiError) -> anyhow::Error {
    let mut message = format!("{}: {}", e.code.as_str(), e.detail);
    for field in &e.errors {
        message.push_str(&format!("\n  {}: {}", field.field, field.message));
    }
    anyhow::anyhow!(message)
}
