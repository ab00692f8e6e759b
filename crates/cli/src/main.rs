//! `tenantry`: the one binary. `serve` runs the server; `init` prepares an installation;
//! the admin commands (`tenant ...`, `secrets ...`) speak the admin API over HTTP.

mod admin;
mod cluster;
mod dev;
mod offline;
mod profile;
mod resources;
mod table;
mod transfer;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tenantry_server::{ConfigError, Overrides, ServeOptions};

// Every request allocates a few dozen small blocks on whichever thread polls it; glibc's
// allocator spent 9–13 % of the server's CPU on them under load (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tenantry",
    version,
    about = "Multi-tenant OpenID Connect / OAuth 2.0 identity platform"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ConfigArgs {
    /// Configuration file (TOML). Default: ./tenantry.toml when present.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080 (env TENANTRY_LISTEN).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Control-plane root folder (env FS_ROOT).
    #[arg(long, value_name = "DIR")]
    fs_root: Option<PathBuf>,
}

impl ConfigArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            config_file: self.config.clone(),
            listen: self.listen.clone(),
            fs_root: self.fs_root.clone(),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Embedded development mode: generate a master key and bootstrap an admin token,
        /// the default tenant and a demo client under FS_ROOT. Never use in production.
        #[arg(long)]
        dev: bool,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Prepare FS_ROOT offline: system keys, the first admin (one-time password, printed
    /// once) and the default tenant. Run it while no server uses that FS_ROOT.
    Init {
        /// The first admin's email (default admin@localhost).
        #[arg(long, value_name = "EMAIL")]
        admin_email: Option<String>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Manage installation admins on FS_ROOT (offline, before or between server runs).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Sign in as an admin (password on standard input, TOTP code) and store the session
    /// in a profile file (mode 0600) the admin commands use.
    Login(profile::Login),
    /// Development helpers: `dev cluster` starts a local cluster.
    Dev {
        #[command(subcommand)]
        command: DevCommand,
    },
    /// Cluster membership: init, join, leave, remove, status (cluster mode).
    Cluster {
        #[command(flatten)]
        args: cluster::ClusterArgs,
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },
    /// Manage tenants through the admin API.
    Tenant {
        #[command(flatten)]
        api: admin::ApiArgs,
        #[command(subcommand)]
        command: admin::TenantCommand,
    },
    /// Manage a tenant's OAuth clients through the admin API.
    Client {
        #[command(flatten)]
        api: admin::ApiArgs,
        #[command(subcommand)]
        command: admin::ClientCommand,
    },
    /// Manage a tenant's users through the admin API.
    User {
        #[command(flatten)]
        api: admin::ApiArgs,
        #[command(subcommand)]
        command: admin::UserCommand,
    },
    /// Manage a tenant's signing keys through the admin API.
    Keys {
        #[command(flatten)]
        api: admin::ApiArgs,
        #[command(subcommand)]
        command: admin::KeysCommand,
    },
    /// A tenant's upstream identity providers (sign-in with Google, GitHub, Microsoft,
    /// OpenID Connect) through the admin API: test one, find accounts by their identity.
    /// The providers themselves are settings (`tenant update --settings`).
    Providers {
        #[command(flatten)]
        api: admin::ApiArgs,
        #[command(subcommand)]
        command: admin::ProvidersCommand,
    },
    /// Manage API keys (automation credentials) through the admin API.
    Apikey {
        #[command(flatten)]
        api: admin::ApiArgs,
        #[command(subcommand)]
        command: admin::ApiKeyCommand,
    },
    /// Manage sealed secrets through the admin API.
    Secrets {
        #[command(flatten)]
        api: admin::ApiArgs,
        #[command(subcommand)]
        command: admin::SecretsCommand,
    },
    /// Manage a tenant's roles and who holds them through the admin API.
    Role {
        #[command(flatten)]
        api: admin::ApiArgs,
        #[command(subcommand)]
        command: resources::RoleCommand,
    },
    /// Manage a tenant's own scopes through the admin API.
    Scope {
        #[command(flatten)]
        api: admin::ApiArgs,
        #[command(subcommand)]
        command: resources::ScopeCommand,
    },
    /// Users' sessions, refresh tokens and consents through the admin API.
    Session {
        #[command(flatten)]
        api: admin::ApiArgs,
        #[command(subcommand)]
        command: resources::SessionCommand,
    },
    /// Read the audit trails through the admin API.
    Audit {
        #[command(flatten)]
        api: admin::ApiArgs,
        #[command(subcommand)]
        command: resources::AuditCommand,
    },
    /// Export a tenant (settings, clients, scopes, roles, users) as a document.
    Export(transfer::ExportArgs),
    /// Import an export document into a new tenant, or merge it into or replace an
    /// existing one; all or nothing.
    Import(transfer::ImportArgs),
    /// Show this installation's transfer key (what an export with credentials is sealed for).
    TransferKey {
        #[command(flatten)]
        api: admin::ApiArgs,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
enum DevCommand {
    /// Start N members on loopback ports sharing one control plane (Raft), with a tenant
    /// `local` whose users live in PostgreSQL; prints each member's URL and the issuer.
    /// Ctrl-C stops them all. Needs PostgreSQL and Redis.
    Cluster(dev::DevCluster),
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Add an admin who signs in with email, password and TOTP (offline, on FS_ROOT).
    Create {
        #[command(flatten)]
        admin: offline::CreateAdmin,
        #[command(flatten)]
        config: ConfigArgs,
    },
    #[command(flatten)]
    Api(resources::AdminApiCommand),
}

fn main() -> ExitCode {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve { dev, config } => {
                tenantry_server::serve(ServeOptions {
                    overrides: config.overrides(),
                    dev,
                })
                .await
            }
            Command::Init { admin_email, config } => offline::init(config.overrides(), admin_email).await,
            Command::Admin {
                command: AdminCommand::Create { admin, config },
            } => offline::create_admin(config.overrides(), admin).await,
            Command::Admin {
                command: AdminCommand::Api(command),
            } => resources::admins(command).await,
            Command::Role { api, command } => resources::role(api, command).await,
            Command::Scope { api, command } => resources::scope(api, command).await,
            Command::Session { api, command } => resources::session(api, command).await,
            Command::Audit { api, command } => resources::audit(api, command).await,
            Command::Completions { shell } => {
                use clap::CommandFactory;
                clap_complete::generate(shell, &mut Cli::command(), "tenantry", &mut std::io::stdout());
                Ok(())
            }
            Command::Login(login) => profile::login(login).await,
            Command::Export(args) => transfer::export(args).await,
            Command::Import(args) => transfer::import(args).await,
            Command::TransferKey { api } => transfer::transfer_key(api).await,
            Command::Tenant { api, command } => admin::tenant(api, command).await,
            Command::Cluster { args, command } => cluster::run(args, command).await,
            Command::Dev {
                command: DevCommand::Cluster(args),
            } => dev::cluster(args).await,
            Command::Client { api, command } => admin::client(api, command).await,
            Command::User { api, command } => admin::user(api, command).await,
            Command::Keys { api, command } => admin::keys(api, command).await,
            Command::Providers { api, command } => admin::providers(api, command).await,
            Command::Apikey { api, command } => admin::api_key(api, command).await,
            Command::Secrets { api, command } => admin::secrets(api, command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<ConfigError>().is_some() => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
