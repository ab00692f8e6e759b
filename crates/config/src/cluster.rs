//! `[cluster]`: this node's place in a Raft cluster. Absent (no `node_id`) = standalone.
//!
//! The secret that members present to each other comes from the environment only
//! (`TENANTRY_CLUSTER_SECRET`), never from the file. With `tls_cert`, `tls_key` and
//! `tls_ca` set, the cluster listener speaks only mutual TLS: members present certificates
//! the cluster's CA signed, and the secret is checked inside that channel as well.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::ConfigError;

/// The shortest cluster secret accepted.
pub const MIN_SECRET_LEN: usize = 32;

#[derive(Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    pub node_id: u64,
    /// Where the cluster listener (Raft and cluster calls) binds.
    pub listen: SocketAddr,
    /// How other members reach that listener; default `http://{listen}`.
    pub advertise_url: Url,
    /// This node's own API address, where a follower may redirect admin writes; default
    /// the address the API listener binds.
    pub api_url: Option<Url>,
    pub secret: String,
    /// Leader API addresses a follower may answer a write with 307 to; empty = forward.
    pub redirect_allowlist: Vec<Url>,
    pub heartbeat: Duration,
    /// Elections start after this much silence (up to twice it, at random).
    pub election_timeout: Duration,
    pub snapshot_every: u64,
    /// A follower more entries behind than this reports `degraded`.
    pub max_lag: u64,
    /// Mutual TLS between members, when configured.
    pub tls: Option<ClusterTlsFiles>,
}

/// PEM files for mutual TLS on the cluster listener and on calls to other members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTlsFiles {
    /// This member's certificate chain (leaf first); it serves as both server and client
    /// certificate, so its names must match the host in `advertise_url`.
    pub cert: PathBuf,
    /// The private key of that certificate (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
    /// The CA that signs every member's certificate: the only root trusted on either side.
    pub ca: PathBuf,
}

impl ClusterTlsFiles {
    /// The three `TENANTRY_CLUSTER_TLS_*` settings (environment first, then the file):
    /// all or none.
    pub fn resolve(
        cert: Option<String>,
        key: Option<String>,
        ca: Option<String>,
        env: &impl Fn(&str) -> Option<String>,
        in_file: &impl Fn(&str) -> String,
    ) -> Result<Option<Self>, ConfigError> {
        let pick = |env_name: &str, key: &str, from_file: Option<String>| -> Option<(PathBuf, String)> {
            env(env_name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| (PathBuf::from(v.trim()), env_name.to_owned()))
                .or_else(|| from_file.map(|v| (PathBuf::from(v.trim()), in_file(&format!("cluster.{key}")))))
        };
        let cert = pick("TENANTRY_CLUSTER_TLS_CERT", "tls_cert", cert);
        let key = pick("TENANTRY_CLUSTER_TLS_KEY", "tls_key", key);
        let ca = pick("TENANTRY_CLUSTER_TLS_CA", "tls_ca", ca);
        match (cert, key, ca) {
            (None, None, None) => Ok(None),
            (Some((cert, _)), Some((key, _)), Some((ca, _))) => Ok(Some(Self { cert, key, ca })),
            (cert, key, ca) => {
                let given = [&cert, &key, &ca].into_iter().flatten().next().map(|(_, s)| s.clone());
                Err(ConfigError::new(
                    given.unwrap_or_default(),
                    "mutual TLS needs all three of TENANTRY_CLUSTER_TLS_CERT, TENANTRY_CLUSTER_TLS_KEY and TENANTRY_CLUSTER_TLS_CA",
                ))
            }
        }
    }
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("node_id", &self.node_id)
            .field("listen", &self.listen)
            .field("advertise_url", &self.advertise_url.as_str())
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileCluster {
    node_id: Option<u64>,
    listen: Option<String>,
    advertise_url: Option<String>,
    api_url: Option<String>,
    #[serde(default)]
    redirect_allowlist: Vec<String>,
    heartbeat_ms: Option<u64>,
    election_timeout_ms: Option<u64>,
    snapshot_every: Option<u64>,
    max_lag: Option<u64>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    tls_ca: Option<String>,
}

impl ClusterConfig {
    pub(crate) fn resolve(
        file: FileCluster,
        env: &impl Fn(&str) -> Option<String>,
        in_file: &impl Fn(&str) -> String,
    ) -> Result<Option<Self>, ConfigError> {
        // (value, where it came from) — the environment first, then the file.
        let pick = |env_name: &str, key: &str, from_file: Option<String>| -> Option<(String, String)> {
            env(env_name)
                .filter(|v| !v.trim().is_empty())
                .map(|v| (v, env_name.to_owned()))
                .or_else(|| from_file.map(|v| (v, in_file(&format!("cluster.{key}")))))
        };
        let number = |env_name: &str, key: &str, from_file: Option<u64>, min: u64, max: u64, default: u64| match pick(
            env_name,
            key,
            from_file.map(|v| v.to_string()),
        ) {
            None => Ok(default),
            Some((raw, source)) => match raw.trim().parse::<u64>() {
                Ok(v) if (min..=max).contains(&v) => Ok(v),
                _ => Err(ConfigError::new(
                    source,
                    format!("`{raw}` must be a whole number from {min} to {max}"),
                )),
            },
        };
        let node_id = match pick(
            "TENANTRY_CLUSTER_NODE_ID",
            "node_id",
            file.node_id.map(|v| v.to_string()),
        ) {
            None => return Ok(None),
            Some((raw, source)) => match raw.trim().parse::<u64>() {
                Ok(v) if v > 0 => v,
                _ => {
                    return Err(ConfigError::new(
                        source,
                        format!("`{raw}` must be a whole number above 0"),
                    ));
                }
            },
        };
        let listen = match pick("TENANTRY_CLUSTER_LISTEN", "listen", file.listen) {
            None => {
                return Err(ConfigError::new(
                    "TENANTRY_CLUSTER_LISTEN",
                    "cluster mode needs the address of the cluster listener, e.g. 127.0.0.1:7080",
                ));
            }
            Some((raw, source)) => raw
                .trim()
                .parse::<SocketAddr>()
                .map_err(|_| ConfigError::new(source, format!("`{raw}` is not a socket address")))?,
        };
        let url = |env_name: &str, key: &str, from_file: Option<String>| -> Result<Option<Url>, ConfigError> {
            match pick(env_name, key, from_file) {
                None => Ok(None),
                Some((raw, source)) => parse_base_url(&raw).map(Some).map_err(|p| ConfigError::new(source, p)),
            }
        };
        let tls = ClusterTlsFiles::resolve(file.tls_cert, file.tls_key, file.tls_ca, env, in_file)?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let advertise_url = match url("TENANTRY_CLUSTER_ADVERTISE_URL", "advertise_url", file.advertise_url)? {
            Some(url) if url.scheme() != scheme => {
                return Err(ConfigError::new(
                    "TENANTRY_CLUSTER_ADVERTISE_URL",
                    if tls.is_some() {
                        "with mutual TLS configured the advertised address must be https"
                    } else {
                        "an https address needs mutual TLS configured (TENANTRY_CLUSTER_TLS_CERT, _KEY, _CA)"
                    },
                ));
            }
            Some(url) => url,
            None if listen.ip().is_unspecified() => {
                return Err(ConfigError::new(
                    "TENANTRY_CLUSTER_ADVERTISE_URL",
                    "the cluster listener binds every address: say how other members reach it",
                ));
            }
            None => Url::parse(&format!("{scheme}://{listen}")).expect("a socket address makes a URL"),
        };
        let api_url = url("TENANTRY_CLUSTER_API_URL", "api_url", file.api_url)?;
        let secret = match env("TENANTRY_CLUSTER_SECRET") {
            Some(s) if s.len() >= MIN_SECRET_LEN => s,
            Some(_) => {
                return Err(ConfigError::new(
                    "TENANTRY_CLUSTER_SECRET",
                    format!("must be at least {MIN_SECRET_LEN} characters (e.g. `openssl rand -base64 32`)"),
                ));
            }
            None => {
                return Err(ConfigError::new(
                    "TENANTRY_CLUSTER_SECRET",
                    "cluster mode needs the secret every member shares (environment only)",
                ));
            }
        };
        let allow_from_env = env("TENANTRY_CLUSTER_REDIRECT_ALLOWLIST").map(|v| {
            v.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
        });
        let (allow_raw, allow_source) = match allow_from_env {
            Some(list) => (list, "TENANTRY_CLUSTER_REDIRECT_ALLOWLIST".to_owned()),
            None => (file.redirect_allowlist, in_file("cluster.redirect_allowlist")),
        };
        let redirect_allowlist = allow_raw
            .iter()
            .map(|raw| parse_base_url(raw).map_err(|p| ConfigError::new(&allow_source, format!("`{raw}`: {p}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let heartbeat_ms = number(
            "TENANTRY_CLUSTER_HEARTBEAT_MS",
            "heartbeat_ms",
            file.heartbeat_ms,
            10,
            10_000,
            100,
        )?;
        let election_ms = number(
            "TENANTRY_CLUSTER_ELECTION_TIMEOUT_MS",
            "election_timeout_ms",
            file.election_timeout_ms,
            50,
            60_000,
            // Failover p99 ≈ 1.3 s on loopback with 300 ms, ≈ 2.5 s with 600 ms
            // (docs/benchmarks.md); raise it on slow or distant networks.
            300,
        )?;
        if election_ms <= heartbeat_ms * 2 {
            return Err(ConfigError::new(
                "TENANTRY_CLUSTER_ELECTION_TIMEOUT_MS",
                format!("must be more than twice the heartbeat ({heartbeat_ms} ms)"),
            ));
        }
        Ok(Some(ClusterConfig {
            node_id,
            listen,
            advertise_url,
            api_url,
            secret,
            redirect_allowlist,
            heartbeat: Duration::from_millis(heartbeat_ms),
            election_timeout: Duration::from_millis(election_ms),
            snapshot_every: number(
                "TENANTRY_CLUSTER_SNAPSHOT_EVERY",
                "snapshot_every",
                file.snapshot_every,
                10,
                10_000_000,
                5_000,
            )?,
            max_lag: number(
                "TENANTRY_CLUSTER_MAX_LAG",
                "max_lag",
                file.max_lag,
                1,
                10_000_000,
                1_000,
            )?,
            tls,
        }))
    }
}

/// An http(s) URL with a host and nothing after the path, kept without a trailing slash.
fn parse_base_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|e| format!("`{raw}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http or https URL with a host".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".to_owned());
    }
    Url::parse(url.as_str().trim_end_matches('/')).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::{Config, Overrides};

    /// The settings a cluster member cannot do without.
    const MEMBER: [(&str, &str); 5] = [
        ("TENANTRY_CLUSTER_NODE_ID", "2"),
        ("TENANTRY_CLUSTER_LISTEN", "127.0.0.1:7080"),
        ("TENANTRY_CLUSTER_SECRET", "0123456789abcdef0123456789abcdef"),
        ("TENANTRY_PUBLIC_URL", "https://id.example"),
        ("TENANTRY_REDIS_URL", "redis://127.0.0.1:6379"),
    ];

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn cluster_mode_needs_its_secret_a_shared_public_url_and_redis() {
        let o = Overrides::default();
        let full = MEMBER;
        let c = Config::resolve(&o, env(&full)).unwrap().cluster.unwrap();
        assert_eq!((c.node_id, c.advertise_url.as_str()), (2, "http://127.0.0.1:7080/"));
        assert!(
            !format!("{c:?}").contains("0123456789abcdef"),
            "the secret is never printed"
        );
        assert!(
            Config::resolve(&o, env(&[])).unwrap().cluster.is_none(),
            "standalone by default"
        );
        for (missing, setting) in [
            ("TENANTRY_CLUSTER_SECRET", "TENANTRY_CLUSTER_SECRET"),
            ("TENANTRY_CLUSTER_LISTEN", "TENANTRY_CLUSTER_LISTEN"),
            ("TENANTRY_PUBLIC_URL", "TENANTRY_PUBLIC_URL"),
            ("TENANTRY_REDIS_URL", "TENANTRY_REDIS_URL"),
        ] {
            let without: Vec<_> = full.iter().copied().filter(|(k, _)| *k != missing).collect();
            let e = Config::resolve(&o, env(&without)).unwrap_err();
            assert_eq!(e.setting, setting);
        }
        for (name, bad) in [
            ("TENANTRY_CLUSTER_SECRET", "short"),
            ("TENANTRY_CLUSTER_NODE_ID", "0"),
            ("TENANTRY_CLUSTER_ELECTION_TIMEOUT_MS", "150"),
            ("TENANTRY_CLUSTER_ADVERTISE_URL", "ftp://x"),
            ("TENANTRY_CLUSTER_ADVERTISE_URL", "https://127.0.0.1:7080"),
            ("TENANTRY_CLUSTER_TLS_CERT", "/etc/tenantry/node.pem"),
        ] {
            let mut with: Vec<_> = full.iter().copied().filter(|(k, _)| *k != name).collect();
            with.push((name, bad));
            assert_eq!(
                Config::resolve(&o, env(&with)).unwrap_err().setting,
                name,
                "{name}={bad}"
            );
        }
    }

    #[test]
    fn cluster_tls_takes_all_three_files_and_an_https_address() {
        let o = Overrides::default();
        let mut full = MEMBER.to_vec();
        full.extend([
            ("TENANTRY_CLUSTER_TLS_CERT", "/etc/tenantry/node.pem"),
            ("TENANTRY_CLUSTER_TLS_KEY", "/etc/tenantry/node.key"),
            ("TENANTRY_CLUSTER_TLS_CA", "/etc/tenantry/ca.pem"),
        ]);
        let c = Config::resolve(&o, env(&full)).unwrap().cluster.unwrap();
        assert_eq!(c.advertise_url.as_str(), "https://127.0.0.1:7080/");
        let tls = c.tls.unwrap();
        assert_eq!(tls.ca, std::path::Path::new("/etc/tenantry/ca.pem"));
        let mut plain = full.to_vec();
        plain.push(("TENANTRY_CLUSTER_ADVERTISE_URL", "http://127.0.0.1:7080"));
        assert_eq!(
            Config::resolve(&o, env(&plain)).unwrap_err().setting,
            "TENANTRY_CLUSTER_ADVERTISE_URL"
        );
        let without_ca: Vec<_> = full
            .iter()
            .copied()
            .filter(|(k, _)| *k != "TENANTRY_CLUSTER_TLS_CA")
            .collect();
        let e = Config::resolve(&o, env(&without_ca)).unwrap_err();
        assert!(e.setting.starts_with("TENANTRY_CLUSTER_TLS_"), "{e:?}");
    }
}
