//! Process configuration: a TOML file, then `TENANTRY_*` (and the original `FS_ROOT`)
//! environment variables, then command-line flags, each overriding the one before.
//!
//! Every problem is reported as a [`ConfigError`] that names the setting (and where it
//! came from) and what is wrong with it; the process then exits non-zero.
//!
//! Beside the settings themselves live the values read once at start-up that the rest of
//! the process is sized or keyed by: the master key ([`master_key`]), the networks whose
//! `X-Forwarded-For` is believed ([`proxies`]), and the limits derived from the
//! file-descriptor budget ([`resources`]). Nothing here serves a request or writes the
//! control plane; a setting that cannot be used stops the process before it listens.

pub mod cluster;
pub mod master_key;
pub mod proxies;
pub mod resources;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

pub use cluster::{ClusterConfig, ClusterTlsFiles};
pub use master_key::load_secretbox;
use proxies::TrustedProxies;

/// The configuration file read when `--config` is not given and the file exists.
pub const DEFAULT_CONFIG_FILE: &str = "tenantry.toml";

/// A setting that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration error in {setting}: {problem}")]
pub struct ConfigError {
    pub setting: String,
    pub problem: String,
}

impl ConfigError {
    pub fn new(setting: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            problem: problem.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Request limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted request body in bytes.
    pub max_body_bytes: usize,
    /// Time allowed for a whole request.
    pub request_timeout: Duration,
    /// Most tenant database pools open at once (least recently used closed beyond);
    /// `None` = derived from the file-descriptor limit at start ([`crate::resources`]).
    pub tenant_db_max_pools: Option<usize>,
    /// Connections per tenant database pool; `None` = derived like the pool count.
    pub tenant_db_max_connections: Option<u32>,
    /// Password hashes computed at once (blocking threads used for Argon2).
    pub hash_workers: usize,
    /// Password hashes allowed to wait for a worker; beyond this they are refused at once.
    pub hash_queue: usize,
    /// Share (percent) of the running + waiting hash slots one tenant may hold, so a flood
    /// against one tenant cannot starve the others.
    pub hash_tenant_share_percent: u8,
    /// Longest wait for a hash worker before the request is refused as overloaded.
    pub hash_max_wait: Duration,
    /// Most client connections open at once; past it, accepting waits. `None`: sized
    /// from the file-descriptor limit (`resources::size_client_connections`).
    pub max_connections: Option<usize>,
    /// Most client connections one address (IPv6: one /64) may hold; trusted proxies are
    /// exempt.
    pub max_connections_per_ip: usize,
    /// Time allowed to send a request head, from connection open or the previous answer
    /// (so also the idle keep-alive timeout).
    pub header_read_timeout: Duration,
    /// Longest wait for in-flight requests on shutdown.
    pub shutdown_grace: Duration,
    /// Deadline of one whole SMTP send (connect, greeting, TLS, authentication, message).
    pub smtp_timeout: Duration,
}

impl Limits {
    /// The capacity of the password hasher (`hash_*`).
    pub fn hashing(&self) -> tenantry_accounts::passwords::HashingLimits {
        tenantry_accounts::passwords::HashingLimits {
            workers: self.hash_workers,
            queue: self.hash_queue,
            tenant_share_percent: self.hash_tenant_share_percent,
            max_wait: self.hash_max_wait,
        }
    }
}

/// The resolved configuration of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub listen: SocketAddr,
    /// External base URL; `None` means "derive from the bound address".
    pub public_url: Option<Url>,
    pub fs_root: PathBuf,
    /// Tenant used by the REST API when a request names none; `None` = disabled.
    pub default_tenant: Option<String>,
    pub log_format: LogFormat,
    pub limits: Limits,
    /// Optional installation-wide database (`sqlite:PATH`, `postgres://…`, `mysql://…`).
    pub global_db_url: Option<String>,
    /// Optional Redis (`redis://…`, `rediss://…`) holding rate-limit counters shared by all
    /// nodes; `None` keeps them in this process's memory.
    pub redis_url: Option<String>,
    /// Optional file of passwords nobody may choose (one per line, compared without case),
    /// used by tenants whose policy turns `password_deny_list` on.
    pub password_deny_list_file: Option<PathBuf>,
    /// Reverse proxies whose `X-Forwarded-For` names the client (per-IP limits); empty =
    /// the TCP peer is the client.
    pub trusted_proxies: TrustedProxies,
    /// What the server's own outbound calls (back-channel logout) may reach.
    pub outbound: tenantry_oidc::outbound::OutboundPolicy,
    /// What calls to upstream identity providers (federation) may reach: the outbound
    /// policy, or plain HTTP and private addresses too where
    /// `federation.allow_insecure_upstreams` is set (development and tests).
    pub upstreams: tenantry_oidc::outbound::OutboundPolicy,
    /// Cluster mode (`[cluster]`, `TENANTRY_CLUSTER_*`); `None` = a standalone node.
    pub cluster: Option<ClusterConfig>,
}

/// The file's shape: every key optional, unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    public_url: Option<String>,
    fs_root: Option<String>,
    default_tenant: Option<String>,
    log_format: Option<String>,
    global_db_url: Option<String>,
    redis_url: Option<String>,
    password_deny_list_file: Option<String>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    #[serde(default)]
    limits: FileLimits,
    #[serde(default)]
    outbound: FileOutbound,
    #[serde(default)]
    federation: FileFederation,
    #[serde(default)]
    cluster: cluster::FileCluster,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOutbound {
    allow_private_networks: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFederation {
    allow_insecure_upstreams: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    max_body_bytes: Option<u64>,
    request_timeout_secs: Option<u64>,
    tenant_db_max_pools: Option<u64>,
    tenant_db_max_connections: Option<u64>,
    hash_workers: Option<u64>,
    hash_queue: Option<u64>,
    hash_tenant_share_percent: Option<u64>,
    hash_max_wait_ms: Option<u64>,
    max_connections: Option<u64>,
    max_connections_per_ip: Option<u64>,
    header_read_timeout_secs: Option<u64>,
    shutdown_grace_secs: Option<u64>,
    smtp_timeout_secs: Option<u64>,
}

/// Values given on the command line (highest precedence).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub listen: Option<String>,
    pub fs_root: Option<PathBuf>,
}

/// One raw value and the name of where it came from, for error messages.
struct Raw {
    value: String,
    source: String,
}

impl Config {
    /// Reads the process environment and the config file.
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::resolve(overrides, |name| std::env::var(name).ok())
    }

    /// Resolves the configuration with an explicit environment (for tests).
    pub fn resolve(overrides: &Overrides, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let (file, file_name) = read_file(overrides.config_file.as_deref())?;
        let in_file = |key: &str| format!("`{key}` in {file_name}");
        let pick = |key: &str,
                    file_value: Option<String>,
                    env_names: &[&str],
                    flag: Option<String>,
                    flag_name: &str|
         -> Option<Raw> {
            if let Some(value) = flag {
                return Some(Raw {
                    value,
                    source: flag_name.to_owned(),
                });
            }
            for name in env_names {
                if let Some(value) = env(name) {
                    return Some(Raw {
                        value,
                        source: (*name).to_owned(),
                    });
                }
            }
            file_value.map(|value| Raw {
                value,
                source: in_file(key),
            })
        };

        let listen = match pick(
            "listen",
            file.listen,
            &["TENANTRY_LISTEN"],
            overrides.listen.clone(),
            "--listen",
        ) {
            Some(raw) => raw.value.trim().parse::<SocketAddr>().map_err(|_| {
                ConfigError::new(
                    raw.source,
                    format!("`{}` is not a socket address such as 127.0.0.1:8080", raw.value),
                )
            })?,
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };

        let public_url = match pick("public_url", file.public_url, &["TENANTRY_PUBLIC_URL"], None, "") {
            Some(raw) => Some(parse_public_url(&raw)?),
            None => None,
        };

        let fs_root = pick(
            "fs_root",
            file.fs_root,
            &["TENANTRY_FS_ROOT", "FS_ROOT"],
            overrides.fs_root.as_ref().map(|p| p.display().to_string()),
            "--fs-root",
        );
        let fs_root = match fs_root {
            Some(raw) if raw.value.trim().is_empty() => return Err(ConfigError::new(raw.source, "must not be empty")),
            Some(raw) => PathBuf::from(raw.value),
            None => PathBuf::from("./data"),
        };

        let default_tenant = match pick(
            "default_tenant",
            file.default_tenant,
            &["TENANTRY_DEFAULT_TENANT"],
            None,
            "",
        ) {
            Some(raw) if raw.value.is_empty() || raw.value == "none" => None,
            Some(raw) => {
                tenantry_controlplane::validate::validate_slug(&raw.value).map_err(|_| {
                    ConfigError::new(
                        raw.source,
                        format!("`{}` is not a valid tenant slug (use \"none\" to disable)", raw.value),
                    )
                })?;
                Some(raw.value)
            }
            None => Some("local".to_owned()),
        };

        let log_format = match pick("log_format", file.log_format, &["TENANTRY_LOG_FORMAT"], None, "") {
            Some(raw) => match raw.value.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    return Err(ConfigError::new(
                        raw.source,
                        format!("`{other}` is not one of text, json"),
                    ));
                }
            },
            None => LogFormat::Text,
        };

        let given = |key: &str,
                     file_value: Option<u64>,
                     env_name: &str,
                     min: u64,
                     max: u64|
         -> Result<Option<u64>, ConfigError> {
            let raw = match env(env_name) {
                Some(value) => Raw {
                    value,
                    source: env_name.to_owned(),
                },
                None => match file_value {
                    Some(v) => Raw {
                        value: v.to_string(),
                        source: in_file(&format!("limits.{key}")),
                    },
                    None => return Ok(None),
                },
            };
            match raw.value.trim().parse::<u64>() {
                Ok(v) if (min..=max).contains(&v) => Ok(Some(v)),
                _ => Err(ConfigError::new(
                    raw.source,
                    format!("`{}` must be a whole number from {min} to {max}", raw.value),
                )),
            }
        };
        let number = |key: &str,
                      file_value: Option<u64>,
                      env_name: &str,
                      min: u64,
                      max: u64,
                      default: u64|
         -> Result<u64, ConfigError> {
            Ok(given(key, file_value, env_name, min, max)?.unwrap_or(default))
        };
        let limits = Limits {
            max_body_bytes: number(
                "max_body_bytes",
                file.limits.max_body_bytes,
                "TENANTRY_MAX_BODY_BYTES",
                1024,
                64 << 20,
                1 << 20,
            )? as usize,
            request_timeout: Duration::from_secs(number(
                "request_timeout_secs",
                file.limits.request_timeout_secs,
                "TENANTRY_REQUEST_TIMEOUT_SECS",
                1,
                3600,
                30,
            )?),
            tenant_db_max_pools: given(
                "tenant_db_max_pools",
                file.limits.tenant_db_max_pools,
                "TENANTRY_TENANT_DB_MAX_POOLS",
                1,
                100_000,
            )?
            .map(|v| v as usize),
            tenant_db_max_connections: given(
                "tenant_db_max_connections",
                file.limits.tenant_db_max_connections,
                "TENANTRY_TENANT_DB_MAX_CONNECTIONS",
                1,
                1000,
            )?
            .map(|v| v as u32),
            hash_workers: number(
                "hash_workers",
                file.limits.hash_workers,
                "TENANTRY_HASH_WORKERS",
                1,
                1024,
                // One Argon2 hash keeps one core busy: more workers than cores only adds latency.
                std::thread::available_parallelism().map_or(1, |n| n.get()) as u64,
            )? as usize,
            hash_queue: number(
                "hash_queue",
                file.limits.hash_queue,
                "TENANTRY_HASH_QUEUE",
                0,
                100_000,
                32,
            )? as usize,
            hash_tenant_share_percent: number(
                "hash_tenant_share_percent",
                file.limits.hash_tenant_share_percent,
                "TENANTRY_HASH_TENANT_SHARE_PERCENT",
                1,
                100,
                50,
            )? as u8,
            hash_max_wait: Duration::from_millis(number(
                "hash_max_wait_ms",
                file.limits.hash_max_wait_ms,
                "TENANTRY_HASH_MAX_WAIT_MS",
                1,
                60_000,
                2000,
            )?),
            max_connections: given(
                "max_connections",
                file.limits.max_connections,
                "TENANTRY_MAX_CONNECTIONS",
                1,
                1_000_000,
            )?
            .map(|v| v as usize),
            max_connections_per_ip: number(
                "max_connections_per_ip",
                file.limits.max_connections_per_ip,
                "TENANTRY_MAX_CONNECTIONS_PER_IP",
                1,
                1_000_000,
                256,
            )? as usize,
            header_read_timeout: Duration::from_secs(number(
                "header_read_timeout_secs",
                file.limits.header_read_timeout_secs,
                "TENANTRY_HEADER_READ_TIMEOUT_SECS",
                1,
                600,
                10,
            )?),
            shutdown_grace: Duration::from_secs(number(
                "shutdown_grace_secs",
                file.limits.shutdown_grace_secs,
                "TENANTRY_SHUTDOWN_GRACE_SECS",
                0,
                3600,
                10,
            )?),
            smtp_timeout: Duration::from_secs(number(
                "smtp_timeout_secs",
                file.limits.smtp_timeout_secs,
                "TENANTRY_SMTP_TIMEOUT_SECS",
                1,
                300,
                tenantry_mail::SMTP_TIMEOUT.as_secs(),
            )?),
        };
        // A mail send must give up before its request does, so the caller hears the mail's
        // error (and a new account is undone) instead of a 408 with the send still running.
        let mut limits = limits;
        limits.smtp_timeout = limits
            .smtp_timeout
            .min(limits.request_timeout.saturating_sub(Duration::from_secs(1)))
            .max(Duration::from_secs(1));
        let global_db_url = match pick(
            "global_db_url",
            file.global_db_url,
            &["TENANTRY_GLOBAL_DB_URL"],
            None,
            "",
        ) {
            Some(raw) if raw.value.trim().is_empty() => None,
            Some(raw) => {
                let scheme = raw.value.split(':').next().unwrap_or("");
                if !matches!(scheme, "sqlite" | "postgres" | "postgresql" | "mysql" | "mariadb") {
                    return Err(ConfigError::new(
                        raw.source,
                        "must start with sqlite:, postgres://, postgresql://, mysql:// or mariadb://",
                    ));
                }
                Some(raw.value)
            }
            None => None,
        };

        let redis_url = match pick("redis_url", file.redis_url, &["TENANTRY_REDIS_URL"], None, "") {
            Some(raw) if raw.value.trim().is_empty() => None,
            Some(raw) => {
                let value = raw.value.trim();
                let scheme = value.split("://").next().unwrap_or("");
                // The URL may hold a password: the message never repeats it.
                if !matches!(scheme, "redis" | "rediss" | "redis+unix" | "unix") || redis::Client::open(value).is_err()
                {
                    return Err(ConfigError::new(
                        raw.source,
                        "must be a Redis URL: redis://[user:password@]host[:port][/db], rediss://… (TLS) or redis+unix:///path",
                    ));
                }
                Some(value.to_owned())
            }
            None => None,
        };

        let password_deny_list_file = pick(
            "password_deny_list_file",
            file.password_deny_list_file,
            &["TENANTRY_PASSWORD_DENY_LIST_FILE"],
            None,
            "",
        )
        .map(|raw| raw.value.trim().to_owned())
        .filter(|path| !path.is_empty())
        .map(PathBuf::from);

        // TOML only: no other list setting has an environment form to follow.
        let trusted_proxies = TrustedProxies::parse(&file.trusted_proxies)
            .map_err(|problem| ConfigError::new(in_file("trusted_proxies"), problem))?;

        let flag = |name: &'static str, from_file: Option<bool>| match env(name) {
            Some(value) => match value.trim() {
                "true" | "1" => Ok(true),
                "false" | "0" | "" => Ok(false),
                other => Err(ConfigError::new(name, format!("`{other}` must be true or false"))),
            },
            None => Ok(from_file.unwrap_or(false)),
        };
        let allow_private_networks = flag(
            "TENANTRY_OUTBOUND_ALLOW_PRIVATE_NETWORKS",
            file.outbound.allow_private_networks,
        )?;
        let allow_insecure_upstreams = flag(
            "TENANTRY_FEDERATION_ALLOW_INSECURE_UPSTREAMS",
            file.federation.allow_insecure_upstreams,
        )?;

        let cluster = ClusterConfig::resolve(file.cluster, &env, &in_file)?;
        if cluster.is_some() {
            // Every member must issue and accept the same `iss`: the address clients use.
            if public_url.is_none() {
                return Err(ConfigError::new(
                    "TENANTRY_PUBLIC_URL",
                    "cluster mode needs the public URL all members share (the load balancer's), so every node issues the same `iss`",
                ));
            }
            // Lockout and rate-limit counters must be shared, or each node counts alone.
            if redis_url.is_none() {
                return Err(ConfigError::new(
                    "TENANTRY_REDIS_URL",
                    "cluster mode needs Redis so attempt counters and rate limits are shared by all members",
                ));
            }
        }

        Ok(Config {
            cluster,
            listen,
            public_url,
            fs_root,
            default_tenant,
            log_format,
            limits,
            global_db_url,
            redis_url,
            password_deny_list_file,
            trusted_proxies,
            outbound: tenantry_oidc::outbound::OutboundPolicy { allow_private_networks },
            upstreams: tenantry_oidc::outbound::OutboundPolicy {
                allow_private_networks: allow_private_networks || allow_insecure_upstreams,
            },
        })
    }

    /// The public base URL: configured, or derived from the address actually bound.
    pub fn public_base(&self, bound: SocketAddr) -> Url {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        let host = if bound.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            bound.ip().to_string()
        };
        let host = if bound.is_ipv6() && !bound.ip().is_unspecified() {
            format!("[{host}]")
        } else {
            host
        };
        Url::parse(&format!("http://{host}:{}", bound.port())).expect("a valid derived URL")
    }
}

fn read_file(explicit: Option<&Path>) -> Result<(FileConfig, String), ConfigError> {
    let path = match explicit {
        Some(p) => p.to_owned(),
        None if Path::new(DEFAULT_CONFIG_FILE).exists() => PathBuf::from(DEFAULT_CONFIG_FILE),
        None => return Ok((FileConfig::default(), DEFAULT_CONFIG_FILE.to_owned())),
    };
    let name = path.display().to_string();
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ConfigError::new(format!("--config {name}"), format!("cannot read the file: {e}")))?;
    let file = toml::from_str(&text).map_err(|e| {
        ConfigError::new(
            format!("config file {name}"),
            format!("malformed TOML: {}", e.to_string().trim()),
        )
    })?;
    Ok((file, name))
}

fn parse_public_url(raw: &Raw) -> Result<Url, ConfigError> {
    let url = Url::parse(raw.value.trim())
        .map_err(|e| ConfigError::new(&raw.source, format!("`{}` is not a URL: {e}", raw.value)))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::new(
            &raw.source,
            "must be an http or https URL with a host",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(&raw.source, "must not have a query or fragment"));
    }
    // Stored without a trailing slash so `{public_url}/t/{slug}` never doubles it.
    let trimmed = url.as_str().trim_end_matches('/').to_owned();
    Url::parse(&trimmed).map_err(|e| ConfigError::new(&raw.source, e.to_string()))
}

/// Creates FS_ROOT if needed and proves it is writable.
pub fn ensure_writable_dir(dir: &Path) -> Result<(), ConfigError> {
    let setting = "FS_ROOT";
    std::fs::create_dir_all(dir)
        .map_err(|e| ConfigError::new(setting, format!("cannot create {}: {e}", dir.display())))?;
    let probe = dir.join(format!(".write-probe-{}", std::process::id()));
    std::fs::write(&probe, b"probe")
        .map_err(|e| ConfigError::new(setting, format!("{} is not writable: {e}", dir.display())))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    fn with_file(toml: &str) -> (tempfile::TempDir, Overrides) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, toml).unwrap();
        (
            dir,
            Overrides {
                config_file: Some(path),
                ..Default::default()
            },
        )
    }

    #[test]
    fn defaults() {
        let (_d, o) = with_file("");
        let c = Config::resolve(&o, env(&[])).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.fs_root, PathBuf::from("./data"));
        assert_eq!(c.default_tenant.as_deref(), Some("local"));
        assert_eq!(c.limits.max_body_bytes, 1 << 20);
        assert!(c.limits.hash_workers >= 1);
        assert_eq!(c.limits.hash_queue, 32);
        assert_eq!(c.limits.hash_tenant_share_percent, 50);
        assert_eq!(c.limits.hash_max_wait, Duration::from_secs(2));
        // Sized from the file-descriptor limit at start unless set.
        assert_eq!(c.limits.tenant_db_max_pools, None);
        assert_eq!(c.limits.tenant_db_max_connections, None);
        let c = Config::resolve(&o, env(&[("TENANTRY_TENANT_DB_MAX_CONNECTIONS", "4")])).unwrap();
        assert_eq!(c.limits.tenant_db_max_connections, Some(4));
        assert_eq!(c.redis_url, None);
        assert!(c.trusted_proxies.is_empty());
    }

    #[test]
    fn insecure_upstreams_open_federation_calls_only() {
        let (_d, o) = with_file("");
        let c = Config::resolve(&o, env(&[])).unwrap();
        assert!(!c.outbound.allow_private_networks && !c.upstreams.allow_private_networks);
        let (_d, o) = with_file("[federation]\nallow_insecure_upstreams = true\n");
        let c = Config::resolve(&o, env(&[])).unwrap();
        assert!(c.upstreams.allow_private_networks, "upstreams on loopback, over http");
        assert!(
            !c.outbound.allow_private_networks,
            "back-channel logout keeps the policy"
        );
        let c = Config::resolve(&o, env(&[("TENANTRY_FEDERATION_ALLOW_INSECURE_UPSTREAMS", "false")])).unwrap();
        assert!(!c.upstreams.allow_private_networks, "the environment wins");
        let (_d, o) = with_file("[outbound]\nallow_private_networks = true\n");
        assert!(Config::resolve(&o, env(&[])).unwrap().upstreams.allow_private_networks);
        let bad = Config::resolve(&o, env(&[("TENANTRY_FEDERATION_ALLOW_INSECURE_UPSTREAMS", "maybe")]));
        assert!(bad.is_err());
    }

    #[test]
    fn a_mail_send_gives_up_before_its_request() {
        let (_d, o) = with_file("[limits]\nrequest_timeout_secs = 10\nsmtp_timeout_secs = 60\n");
        let c = Config::resolve(&o, |_| None).unwrap();
        assert_eq!(c.limits.smtp_timeout, Duration::from_secs(9));
        let (_d, o) = with_file("[limits]\nsmtp_timeout_secs = 5\n");
        assert_eq!(
            Config::resolve(&o, |_| None).unwrap().limits.smtp_timeout,
            Duration::from_secs(5)
        );
    }

    #[test]
    fn trusted_proxies_come_from_the_file_and_a_bad_entry_is_named() {
        let (_d, o) = with_file("trusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1\", \"::1\", \"fd00::/8\"]\n");
        let c = Config::resolve(&o, env(&[])).unwrap();
        assert_eq!(
            c.trusted_proxies,
            TrustedProxies::parse(&["10.0.0.0/8", "127.0.0.1", "::1", "fd00::/8"]).unwrap()
        );
        for bad in ["10.0.0.0/40", "proxy.internal", "10.0.0.1/8"] {
            let (_d, o) = with_file(&format!("trusted_proxies = [\"::1\", \"{bad}\"]\n"));
            let e = Config::resolve(&o, env(&[])).unwrap_err();
            assert!(e.setting.contains("`trusted_proxies`"), "{e}");
            assert!(e.problem.contains(&format!("`{bad}`")), "{e}");
        }
        let (_d, o) = with_file("trusted_proxies = \"10.0.0.0/8\"\n");
        let e = Config::resolve(&o, env(&[])).unwrap_err();
        assert!(e.problem.contains("trusted_proxies"), "a list is required: {e}");
    }

    #[test]
    fn hashing_limits_and_redis_url_come_from_file_or_env() {
        let (_d, o) = with_file(
            "redis_url = \"redis://127.0.0.1:6379/2\"\n[limits]\nhash_workers = 3\nhash_queue = 0\nhash_tenant_share_percent = 25\nhash_max_wait_ms = 150\n",
        );
        let c = Config::resolve(&o, env(&[])).unwrap();
        assert_eq!(c.limits.hash_workers, 3);
        assert_eq!(c.limits.hash_queue, 0);
        assert_eq!(c.limits.hash_tenant_share_percent, 25);
        assert_eq!(c.limits.hash_max_wait, Duration::from_millis(150));
        assert_eq!(c.redis_url.as_deref(), Some("redis://127.0.0.1:6379/2"));
        let c = Config::resolve(
            &o,
            env(&[
                ("TENANTRY_HASH_WORKERS", "5"),
                ("TENANTRY_REDIS_URL", "rediss://h.example:6380"),
            ]),
        )
        .unwrap();
        assert_eq!(c.limits.hash_workers, 5);
        assert_eq!(c.redis_url.as_deref(), Some("rediss://h.example:6380"));
        let c = Config::resolve(&o, env(&[("TENANTRY_REDIS_URL", "")])).unwrap();
        assert_eq!(c.redis_url, None, "an empty value switches back to in-memory counters");

        for (name, bad) in [
            ("TENANTRY_HASH_WORKERS", "0"),
            ("TENANTRY_HASH_QUEUE", "-1"),
            ("TENANTRY_HASH_TENANT_SHARE_PERCENT", "0"),
            ("TENANTRY_HASH_TENANT_SHARE_PERCENT", "101"),
            ("TENANTRY_HASH_MAX_WAIT_MS", "0"),
        ] {
            let e = Config::resolve(&o, env(&[(name, bad)])).unwrap_err();
            assert_eq!(e.setting, name, "{bad}");
        }
        for bad in ["http://h:6379", "redis://user:hunter2@[bad", "localhost:6379"] {
            let e = Config::resolve(&o, env(&[("TENANTRY_REDIS_URL", bad)])).unwrap_err();
            assert_eq!(e.setting, "TENANTRY_REDIS_URL", "{bad}");
            assert!(!e.problem.contains("hunter2"), "the password leaked: {e}");
        }
    }

    #[test]
    fn precedence_is_flag_then_env_then_file() {
        let (_d, mut o) = with_file(
            "listen = \"127.0.0.1:1000\"\nfs_root = \"/file\"\npublic_url = \"https://id.example.com/\"\n[limits]\nmax_body_bytes = 4096\n",
        );
        let c = Config::resolve(&o, env(&[("FS_ROOT", "/env")])).unwrap();
        assert_eq!(c.listen.port(), 1000);
        assert_eq!(c.fs_root, PathBuf::from("/env"));
        assert_eq!(c.public_url.unwrap().as_str(), "https://id.example.com/");
        assert_eq!(c.limits.max_body_bytes, 4096);
        o.listen = Some("127.0.0.1:2000".into());
        o.fs_root = Some("/flag".into());
        let c = Config::resolve(&o, env(&[("FS_ROOT", "/env"), ("TENANTRY_LISTEN", "127.0.0.1:3000")])).unwrap();
        assert_eq!(c.listen.port(), 2000);
        assert_eq!(c.fs_root, PathBuf::from("/flag"));
    }

    #[test]
    fn errors_name_the_setting() {
        let (_d, o) = with_file("listen = [1,\n");
        let e = Config::resolve(&o, env(&[])).unwrap_err();
        assert!(e.setting.starts_with("config file"), "{e}");
        assert!(e.problem.contains("malformed TOML"), "{e}");

        let (_d, o) = with_file("lsten = \"x\"\n");
        let e = Config::resolve(&o, env(&[])).unwrap_err();
        assert!(e.problem.contains("lsten"), "{e}");

        let (_d, o) = with_file("");
        let e = Config::resolve(&o, env(&[("TENANTRY_LISTEN", "nope")])).unwrap_err();
        assert_eq!(e.setting, "TENANTRY_LISTEN");
        let e = Config::resolve(&o, env(&[("TENANTRY_PUBLIC_URL", "ftp://x")])).unwrap_err();
        assert_eq!(e.setting, "TENANTRY_PUBLIC_URL");
        let e = Config::resolve(&o, env(&[("TENANTRY_DEFAULT_TENANT", "Bad Slug")])).unwrap_err();
        assert_eq!(e.setting, "TENANTRY_DEFAULT_TENANT");
        let e = Config::resolve(&o, env(&[("TENANTRY_LOG_FORMAT", "xml")])).unwrap_err();
        assert_eq!(e.setting, "TENANTRY_LOG_FORMAT");
        let e = Config::resolve(&o, env(&[("TENANTRY_MAX_BODY_BYTES", "12")])).unwrap_err();
        assert_eq!(e.setting, "TENANTRY_MAX_BODY_BYTES");
        let c = Config::resolve(&o, env(&[("TENANTRY_DEFAULT_TENANT", "none")])).unwrap();
        assert_eq!(c.default_tenant, None);
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let o = Overrides {
            config_file: Some("/no/such/file.toml".into()),
            ..Default::default()
        };
        assert!(Config::resolve(&o, env(&[])).unwrap_err().setting.contains("--config"));
    }

    #[test]
    fn unwritable_fs_root_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let e = ensure_writable_dir(&file.join("sub")).unwrap_err();
        assert_eq!(e.setting, "FS_ROOT");
    }

    #[test]
    fn public_base_is_derived_from_the_bound_address() {
        let (_d, o) = with_file("");
        let c = Config::resolve(&o, env(&[])).unwrap();
        assert_eq!(
            c.public_base("0.0.0.0:9000".parse().unwrap()).as_str(),
            "http://127.0.0.1:9000/"
        );
    }
}
