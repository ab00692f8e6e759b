//! Tenantry's HTTP server: configuration, middleware, extractors (`web`), hosted pages,
//! the routes of the admin, REST and issuer surfaces, and start-up.
//!
//! The request path is: request id + tracing span → limits (body size, timeout) →
//! security headers → `TenantContextResolver` (`tenantry-tenancy`, tenant routes) →
//! handler → the domain crates (`tenantry-oidc` for protocol rules, `tenantry-accounts`
//! for logins and account flows, `tenantry-mail`) or the control-plane writer. Handlers
//! read the request, call those crates with narrow arguments, and turn their results
//! into responses; the rules themselves live there.

pub mod app;
pub mod cluster;
pub mod error;
pub mod http_server;
pub mod middleware;
pub mod openapi;
pub mod pages;
pub mod routes;
pub mod state;
pub mod telemetry;
pub mod web;

use std::sync::Arc;

use anyhow::Context;
use tenantry_controlplane::{ControlPlane, FsStore, StandaloneWriter};

pub use app::router;
pub use state::AppState;
use tenantry_admin::installation;
use tenantry_config::resources;
pub use tenantry_config::{Config, ConfigError, Overrides};

/// Folder under FS_ROOT that holds SQLite tenant databases (`<tenant id>/tenant.db`).
/// It is data plane, not control plane: deleting a tenant leaves its file for the operator.
pub const TENANT_DB_DIR: &str = "tenant-db";

/// How often the key timer looks for keys due for rotation or retirement.
const KEY_MAINTENANCE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(300);
/// The installation's audit trail when there is no global database (JSON lines).
pub const ADMIN_EVENTS_FILE: &str = "audit/admin-events.jsonl";

/// How `tenantry serve` was asked to run.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    pub overrides: Overrides,
    /// Embedded development mode: generate a master key and bootstrap credentials.
    pub dev: bool,
}

/// A server ready to accept connections: its state, its bound listener, and what start-up
/// created. [`serve`] runs it; tests run it in-process on an ephemeral port.
pub struct Prepared {
    pub state: AppState,
    pub listener: tokio::net::TcpListener,
    /// Cluster mode: the listener for Raft and cluster calls.
    pub cluster_listener: Option<tokio::net::TcpListener>,
    pub installed: installation::Installed,
}

/// Loads configuration and the master key, opens the control plane, (with `--dev`) makes
/// the development installation, binds the listener and builds the application state.
pub async fn prepare(options: &ServeOptions) -> anyhow::Result<Prepared> {
    let config = Config::load(&options.overrides)?;
    telemetry::init(config.log_format);
    tenantry_config::ensure_writable_dir(&config.fs_root)?;
    let secrets = tenantry_config::load_secretbox(|name| std::env::var(name).ok(), &config.fs_root, options.dev)?;

    if config.cluster.is_some() {
        tenantry_cluster::recover(&config.fs_root).with_context(|| {
            format!(
                "finishing an interrupted snapshot install under {}",
                config.fs_root.display()
            )
        })?;
    }
    let control_plane = Arc::new(
        ControlPlane::open(FsStore::new(&config.fs_root))
            .with_context(|| format!("loading the control plane under {}", config.fs_root.display()))?,
    );
    let local_writer: Arc<dyn tenantry_controlplane::Writer> = Arc::new(StandaloneWriter::new(control_plane.clone()));
    // A cluster member's tree changes only through Raft once it has joined a cluster; before
    // that (the first node, before `tenantry cluster init`) it may still be prepared here.
    let clustered = config.cluster.is_some() && tenantry_cluster::fs_root_is_clustered(&config.fs_root);
    let installed = if options.dev && !clustered {
        installation::ensure_installation(
            &control_plane,
            &*local_writer,
            &secrets,
            config.default_tenant.as_deref(),
            installation::FirstAdmin::DevToken,
        )
        .await?
    } else {
        if control_plane.snapshot().admins.is_empty() {
            tracing::warn!(
                "no admin exists yet: run `tenantry init` (or `tenantry admin create`) to create the first admin"
            );
        }
        installation::Installed::default()
    };

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {} (setting `listen` / TENANTRY_LISTEN)", config.listen))?;
    let bound = listener.local_addr()?;
    let public_url = config.public_base(bound);
    let (cluster, cluster_listener) = match &config.cluster {
        Some(settings) => {
            let (cluster, listener) = start_cluster(settings, &config.fs_root, bound, control_plane.clone()).await?;
            (Some(cluster), Some(listener))
        }
        None => (None, None),
    };
    // The one writer of this node: admin routes and key timers all write through it.
    let writer: Arc<dyn tenantry_controlplane::Writer> = match &cluster {
        Some(cluster) => Arc::new(tenantry_cluster::ClusterWriter::new(cluster.clone())),
        None => local_writer,
    };
    let secrets = Arc::new(secrets);
    let mut db_config = tenantry_dataplane::ManagerConfig::new(config.fs_root.join(TENANT_DB_DIR));
    let pools = resources::size_pools(
        resources::raise_fd_limit(),
        config.limits.tenant_db_max_pools,
        config.limits.tenant_db_max_connections,
    );
    if let Some(warning) = &pools.warning {
        tracing::warn!("{warning}");
    }
    db_config.max_pools = pools.max_pools;
    db_config.max_connections = pools.max_connections;
    db_config.node_local_allowed = config.cluster.is_none();
    let dbs = tenantry_dataplane::TenantDbManager::new(db_config, secrets.clone());
    control_plane.subscribe(dbs.clone());
    let global_db = match &config.global_db_url {
        Some(url) => Some(
            tenantry_dataplane::GlobalDb::connect(url)
                .await
                .map_err(|e| ConfigError::new("global_db_url (TENANTRY_GLOBAL_DB_URL)", e.to_string()))?,
        ),
        None => None,
    };
    let rate_limiter = tenantry_accounts::ratelimit::RateLimiter::connect(config.redis_url.as_deref())
        .await
        .map_err(|e| ConfigError::new("redis_url (TENANTRY_REDIS_URL)", e.to_string()))?;
    let hasher = tenantry_accounts::passwords::PasswordHasher::new(config.limits.hashing());
    let password_deny_list = match &config.password_deny_list_file {
        Some(path) => Some(Arc::new(tenantry_accounts::passwords::DenyList::load(path).map_err(
            |e| {
                ConfigError::new(
                    "password_deny_list_file (TENANTRY_PASSWORD_DENY_LIST_FILE)",
                    e.to_string(),
                )
            },
        )?)),
        None => None,
    };
    let keystore = Arc::new(tenantry_tenancy::keystore::KeyStore::new(secrets.clone()));
    let resolver = tenantry_tenancy::TenantContextResolver::new(
        control_plane.clone(),
        dbs.clone(),
        keystore.clone(),
        config.default_tenant.clone(),
        &public_url,
    )
    .with_writer(writer.clone());
    let mailer = tenantry_mail::Mailer::with_timeout(config.limits.smtp_timeout);
    control_plane.subscribe(Arc::new(mailer.clone()));
    let accounts = tenantry_accounts::Accounts {
        rate_limiter,
        hasher,
        secrets: secrets.clone(),
        mailer,
        password_deny_list,
    };
    let audit_sink = match &global_db {
        Some(global) => tenantry_admin::AuditSink::Database(global.clone()),
        None => tenantry_admin::AuditSink::File(Arc::new(tenantry_admin::audit::EventFile::new(
            config.fs_root.join(ADMIN_EVENTS_FILE),
        ))),
    };
    let admin = tenantry_admin::AdminService::new(writer.clone(), audit_sink);
    let upstreams = Arc::new(tenantry_federation::Upstreams::new(config.upstreams)?);
    let state = AppState::new(state::Shared {
        upstreams,
        config: Arc::new(config),
        public_url,
        writer,
        admin,
        control_plane,
        secrets,
        resolver,
        metrics: telemetry::metrics_handle(),
        dbs,
        global_db,
        keystore,
        accounts,
        housekeeping: Default::default(),
        cluster,
    });
    routes::ops::self_check_keys(&state);
    let mut installed = installed;
    if installed.demo_client_created
        && let Some(slug) = &state.config.default_tenant
    {
        let ctx = state
            .resolver
            .resolve_slug(slug)
            .map_err(|e| anyhow::anyhow!("{}", e.detail))?;
        installed.demo_user = Some(installation::ensure_demo_user(&ctx).await?);
    }
    Ok(Prepared {
        state,
        listener,
        cluster_listener,
        installed,
    })
}

/// Binds the cluster listener and starts this node's Raft member.
async fn start_cluster(
    settings: &tenantry_config::ClusterConfig,
    fs_root: &std::path::Path,
    api_bound: std::net::SocketAddr,
    control_plane: Arc<ControlPlane>,
) -> anyhow::Result<(Arc<tenantry_cluster::Cluster>, tokio::net::TcpListener)> {
    let listener = tokio::net::TcpListener::bind(settings.listen).await.with_context(|| {
        format!(
            "binding {} (setting `cluster.listen` / TENANTRY_CLUSTER_LISTEN)",
            settings.listen
        )
    })?;
    let api_url = match &settings.api_url {
        Some(url) => url.as_str().trim_end_matches('/').to_owned(),
        None => format!("http://{api_bound}"),
    };
    let tls = match &settings.tls {
        Some(files) => Some(
            tenantry_cluster::MutualTls::load(&files.cert, &files.key, &files.ca)
                .context("loading the cluster's TLS files (TENANTRY_CLUSTER_TLS_CERT, _KEY, _CA)")?,
        ),
        None => None,
    };
    let cluster = tenantry_cluster::Cluster::start(
        tenantry_cluster::Settings {
            node_id: settings.node_id,
            fs_root: fs_root.to_owned(),
            cluster_url: settings.advertise_url.as_str().trim_end_matches('/').to_owned(),
            api_url,
            secret: settings.secret.clone(),
            tls,
            bind_ip: Some(settings.listen.ip()).filter(|ip| !ip.is_unspecified()),
            heartbeat: settings.heartbeat,
            election_timeout: (settings.election_timeout, settings.election_timeout * 2),
            snapshot_every: settings.snapshot_every,
        },
        control_plane,
    )
    .await?;
    Ok((cluster, listener))
}

/// Runs the server until SIGTERM or SIGINT, then drains in-flight requests.
pub async fn serve(options: ServeOptions) -> anyhow::Result<()> {
    let Prepared {
        state,
        listener,
        cluster_listener,
        installed,
    } = prepare(&options).await?;
    if let (Some(cluster), Some(listener)) = (&state.cluster, cluster_listener) {
        // The same listener limits as the API's (header deadline, connection caps): any
        // caller can connect before the secret is checked.
        let limits = http_server::ConnectionLimits::from_config(&state.config);
        let app = tenantry_cluster::rpc::router(cluster.clone());
        let tls = cluster.tls.as_ref().map(tenantry_cluster::MutualTls::acceptor);
        tokio::spawn(async move {
            if let Err(e) = http_server::run_with_tls(listener, app, limits, tls, std::future::pending()).await {
                tracing::error!(error = %e, "the cluster listener stopped");
            }
        });
    }
    print_banner(&state, &installed, options.dev);
    tenantry_oidc::key_rotation::spawn_maintenance(
        state.control_plane.clone(),
        state.writer.clone(),
        state.secrets.clone(),
        KEY_MAINTENANCE_INTERVAL,
    );
    let writer = state.writer.clone();
    state.housekeeping.clone().spawn(
        state.control_plane.clone(),
        state.dbs.clone(),
        tenantry_accounts::housekeeping::INTERVAL,
        move || writer.is_leader(),
    );
    let limits = http_server::ConnectionLimits::from_config(&state.config);
    let app = router(state);
    http_server::run(listener, app, limits, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

fn print_banner(state: &AppState, installed: &installation::Installed, dev: bool) {
    let (config, public_url, resolver, cp) = (&state.config, &state.public_url, &state.resolver, &state.control_plane);
    // A cluster member names its own address; the public URL is the one all members share.
    let base = match &state.cluster {
        Some(cluster) => cluster.me.api_url.clone(),
        None => public_url.as_str().trim_end_matches('/').to_owned(),
    };
    println!("Tenantry listening on {base} (FS_ROOT {})", config.fs_root.display());
    if let Some(cluster) = &state.cluster {
        println!(
            "  cluster node {} (cluster listener {}; public URL {})",
            cluster.id,
            cluster.me.cluster_url,
            public_url.as_str().trim_end_matches('/')
        );
    }
    let default_issuer = config
        .default_tenant
        .as_ref()
        .and_then(|slug| Some((slug, resolver.issuer_for(cp.snapshot().tenant(slug)?))));
    if let Some((slug, issuer)) = &default_issuer {
        println!("  issuer of tenant `{slug}`: {issuer}");
    }
    if dev {
        let token_file = config.fs_root.join(installation::DEV_ADMIN_TOKEN_FILE);
        match &installed.admin_token {
            Some(token) => println!("  admin token (shown once, also in {}): {token}", token_file.display()),
            None => println!("  admin token: in {}", token_file.display()),
        }
        if config.default_tenant.is_some() {
            println!(
                "  demo public client: {} (authorization code + PKCE S256)",
                installation::DEMO_CLIENT_ID
            );
            if let Some((email, password)) = &installed.demo_user {
                println!("  demo user (password shown once): {email} / {password}");
            }
            if let Some((_, issuer)) = &default_issuer {
                println!(
                    "  account page (sign in as the demo user): {issuer}/{}",
                    tenantry_tenancy::ACCOUNT_PATH
                );
                if matches!(public_url.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_))) {
                    println!(
                        "  passkeys need a host name, not an IP address: set TENANTRY_PUBLIC_URL=http://localhost:{}",
                        public_url.port_or_known_default().unwrap_or(80)
                    );
                }
            }
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received; draining requests");
}
