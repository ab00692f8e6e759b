//! The process's file descriptors, which bound how many tenant database connections can
//! be open: the soft `RLIMIT_NOFILE` is raised to the hard limit at start, the tenant-pool
//! defaults are sized from it, and `/readyz` and `/metrics` report how many are in use.

/// Share (percent) of the descriptor limit that tenant-database connections may take; the
/// rest is for client sockets, SMTP and Redis connections, key and log files.
const DB_SHARE_PERCENT: u64 = 50;
/// Descriptors one tenant-database connection may hold: a SQLite connection in WAL mode
/// keeps the database, its `-wal` and its `-shm` file open (a network connection, one).
const FDS_PER_CONNECTION: u64 = 3;
/// The largest defaults (a generous limit still gets these).
const DEFAULT_MAX_POOLS: usize = 256;
const DEFAULT_MAX_CONNECTIONS: u32 = 8;
/// Share (percent) of the descriptor limit that client connections may take (one socket
/// each); with the tenant databases' share, a tenth is left for everything else.
const CLIENT_SHARE_PERCENT: u64 = 40;
/// The largest default client-connection cap.
const DEFAULT_MAX_CLIENT_CONNECTIONS: usize = 4096;
/// `/readyz` reports `degraded` when this share (percent) of the limit is in use.
pub const PRESSURE_PERCENT: u64 = 80;

/// Raises the soft descriptor limit to the hard one (an unprivileged process may) and
/// answers the limit now in force; `None` where it cannot be read.
pub fn raise_fd_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let mut limit = getrlimit(Resource::Nofile);
        if limit.current != limit.maximum {
            let raised = rustix::process::Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => limit = raised,
                Err(e) => tracing::warn!(error = %e, "could not raise the file-descriptor limit to the hard limit"),
            }
        }
        // `None` = unlimited: nothing to budget against.
        limit.current
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// The soft descriptor limit in force.
pub fn max_fds() -> Option<u64> {
    #[cfg(unix)]
    {
        rustix::process::getrlimit(rustix::process::Resource::Nofile).current
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Descriptors open now (Linux: the entries of `/proc/self/fd`); `None` elsewhere.
pub fn open_fds() -> Option<u64> {
    // The directory handle read_dir holds is one of the entries; do not count it.
    std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|entries| entries.count().saturating_sub(1) as u64)
}

/// Tenant pool limits for a descriptor limit, and a warning when explicit settings exceed
/// the budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSizing {
    pub max_pools: usize,
    pub max_connections: u32,
    /// Tenant-database connections the descriptor limit leaves room for (`None`: no limit).
    pub budget: Option<u64>,
    pub warning: Option<String>,
}

/// Sizes the tenant pools: a setting the operator gave is kept (with a warning when
/// `pools × connections` can exceed the budget); a missing one is derived so that it
/// cannot.
pub fn size_pools(fd_limit: Option<u64>, pools: Option<usize>, connections: Option<u32>) -> PoolSizing {
    let budget = fd_limit.map(|limit| (limit * DB_SHARE_PERCENT / 100 / FDS_PER_CONNECTION).max(1));
    let max_connections = connections.unwrap_or_else(|| match budget {
        Some(b) => (b / 4).clamp(1, DEFAULT_MAX_CONNECTIONS as u64) as u32,
        None => DEFAULT_MAX_CONNECTIONS,
    });
    let max_pools = pools.unwrap_or_else(|| match budget {
        Some(b) => ((b / max_connections as u64) as usize).clamp(1, DEFAULT_MAX_POOLS),
        None => DEFAULT_MAX_POOLS,
    });
    let total = max_pools as u64 * max_connections as u64;
    let warning = match (budget, fd_limit) {
        (Some(b), Some(limit)) if total > b && (pools.is_some() || connections.is_some()) => Some(format!(
            "limits.tenant_db_max_pools ({max_pools}) x limits.tenant_db_max_connections ({max_connections}) allow \
             {total} tenant-database connections, more than the {b} the file-descriptor limit of {limit} leaves room \
             for (a SQLite connection holds up to {FDS_PER_CONNECTION} descriptors, and client sockets need the rest): \
             lower them or raise the limit (ulimit -n, systemd LimitNOFILE)"
        )),
        _ => None,
    };
    PoolSizing {
        max_pools,
        max_connections,
        budget,
        warning,
    }
}

/// The client-connection cap for a descriptor limit, and a warning when an explicit one
/// exceeds its share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSizing {
    pub max_connections: usize,
    pub warning: Option<String>,
}

/// Sizes `limits.max_connections`: a value the operator gave is kept (named in a warning
/// when it exceeds the client share of the descriptor limit, where accepting would fail
/// with EMFILE before the cap is reached); a missing one is derived to fit.
pub fn size_client_connections(fd_limit: Option<u64>, configured: Option<usize>) -> ClientSizing {
    let share = fd_limit.map(|limit| (limit * CLIENT_SHARE_PERCENT / 100).max(1) as usize);
    let max_connections = configured.unwrap_or_else(|| match share {
        Some(share) => share.min(DEFAULT_MAX_CLIENT_CONNECTIONS),
        None => DEFAULT_MAX_CLIENT_CONNECTIONS,
    });
    let warning = match (share, fd_limit) {
        (Some(share), Some(limit)) if configured.is_some() && max_connections > share => Some(format!(
            "limits.max_connections ({max_connections}) is more than the {share} client sockets the \
             file-descriptor limit of {limit} leaves room for beside the tenant databases: lower it or \
             raise the limit (ulimit -n, systemd LimitNOFILE)"
        )),
        _ => None,
    };
    ClientSizing {
        max_connections,
        warning,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fit_the_descriptor_limit() {
        for limit in [256, 1024, 4096, 65_536, 1 << 20] {
            let s = size_pools(Some(limit), None, None);
            let fds = s.max_pools as u64 * s.max_connections as u64 * FDS_PER_CONNECTION;
            assert!(fds <= limit / 2, "{limit}: {s:?} may hold {fds} descriptors");
            assert!(s.max_pools >= 1 && s.max_connections >= 1);
            assert_eq!(s.warning, None);
        }
        // The old defaults (256 x 8) needed far more than a 1,024 limit has.
        let s = size_pools(Some(1024), None, None);
        assert!(s.max_pools < 256, "{s:?}");
        // A generous limit gets the full defaults; no limit too.
        assert_eq!(size_pools(Some(1 << 20), None, None).max_pools, 256);
        assert_eq!(size_pools(None, None, None).max_connections, 8);
    }

    #[test]
    fn client_connections_and_pools_together_fit_the_descriptor_limit() {
        for limit in [256, 1024, 4096, 20_000, 1 << 20] {
            let clients = size_client_connections(Some(limit), None).max_connections as u64;
            let pools = size_pools(Some(limit), None, None);
            let db = pools.max_pools as u64 * pools.max_connections as u64 * FDS_PER_CONNECTION;
            assert!(
                clients + db <= limit * 9 / 10,
                "{limit}: {clients} clients + {db} db descriptors"
            );
        }
        assert_eq!(size_client_connections(None, None).max_connections, 4096);
        let explicit = size_client_connections(Some(1024), Some(5000));
        assert_eq!(explicit.max_connections, 5000);
        assert!(explicit.warning.unwrap().contains("limits.max_connections"));
    }

    #[test]
    fn explicit_settings_are_kept_and_named_when_over_budget() {
        let s = size_pools(Some(1024), Some(256), Some(8));
        assert_eq!((s.max_pools, s.max_connections), (256, 8));
        let warning = s.warning.expect("over budget");
        assert!(
            warning.contains("limits.tenant_db_max_pools") && warning.contains("limits.tenant_db_max_connections"),
            "{warning}"
        );
        // One explicit setting: the other is derived to fit.
        let s = size_pools(Some(1024), None, Some(2));
        assert!(s.max_pools as u64 * 2 <= s.budget.unwrap(), "{s:?}");
        assert_eq!(s.warning, None);
    }

    #[test]
    fn the_limit_is_raised_and_descriptors_are_counted() {
        let limit = raise_fd_limit();
        assert_eq!(limit, max_fds());
        if cfg!(target_os = "linux") {
            // Other tests run beside this one, so only bounds are certain.
            let open = open_fds().unwrap();
            assert!(open >= 3 && limit.is_none_or(|l| open <= l), "{open} of {limit:?}");
        }
    }
}
