//! What this process knows about each tenant's access-token deny-list.
//!
//! The deny-list lives in the tenant database (RFC 7009 revocation puts a `jti` there
//! until the token expires). Asking the database on every bearer check would put I/O on
//! the hottest paths (introspection, userinfo), so answers are remembered here:
//!
//! - "denied" is final: a revocation is never undone, and the entry goes when the token
//!   expires anyway;
//! - "not denied" is re-asked after [`RECHECK`]. Revocations made through this process
//!   are recorded here at once, so they are honoured immediately; one made by another
//!   process sharing the tenant database is honoured within `RECHECK`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

/// How long a "not denied" answer is trusted before the database is asked again.
pub const RECHECK: Duration = Duration::from_secs(1);
/// Entries kept across all tenants before stale ones are dropped.
const CAPACITY: usize = 65_536;

#[derive(Debug, Clone, Copy)]
enum Known {
    /// On the deny-list until the token's `exp` (unix seconds).
    Denied { until: i64 },
    /// Not on the deny-list when last asked.
    Allowed { asked: Instant, exp: i64 },
}

/// Remembered deny-list answers, by tenant and `jti`.
#[derive(Debug, Default)]
pub struct Revocations {
    known: Mutex<HashMap<Uuid, HashMap<String, Known>>>,
}

impl Revocations {
    /// `Some(true)` when the token is known to be revoked, `Some(false)` when it was
    /// checked less than [`RECHECK`] ago and was not, `None` when the database must say.
    pub fn known(&self, tenant: Uuid, jti: &str) -> Option<bool> {
        let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        match known.get(&tenant)?.get(jti)? {
            Known::Denied { .. } => Some(true),
            Known::Allowed { asked, .. } if asked.elapsed() < RECHECK => Some(false),
            Known::Allowed { .. } => None,
        }
    }

    /// Records the database's answer for a token that expires at `exp`.
    pub fn remember(&self, tenant: Uuid, jti: &str, denied: bool, exp: i64) {
        let entry = if denied {
            Known::Denied { until: exp }
        } else {
            Known::Allowed {
                asked: Instant::now(),
                exp,
            }
        };
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.values().map(HashMap::len).sum::<usize>() >= CAPACITY {
            let now = chrono::Utc::now().timestamp();
            for jtis in known.values_mut() {
                jtis.retain(|_, k| match *k {
                    Known::Denied { until } => until >= now,
                    Known::Allowed { asked, exp } => exp >= now && asked.elapsed() < RECHECK,
                });
            }
            known.retain(|_, jtis| !jtis.is_empty());
        }
        let jtis = known.entry(tenant).or_default();
        // A revocation is final: a racing "not denied" answer never overwrites it.
        if !matches!(jtis.get(jti), Some(Known::Denied { .. })) || denied {
            jtis.insert(jti.to_owned(), entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_remembered_per_tenant_and_revocation_is_final() {
        let cache = Revocations::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let exp = chrono::Utc::now().timestamp() + 300;
        assert_eq!(cache.known(a, "j1"), None);
        cache.remember(a, "j1", false, exp);
        assert_eq!(cache.known(a, "j1"), Some(false));
        assert_eq!(cache.known(b, "j1"), None, "another tenant's answer is not this one's");
        cache.remember(a, "j1", true, exp);
        assert_eq!(cache.known(a, "j1"), Some(true));
        cache.remember(a, "j1", false, exp);
        assert_eq!(
            cache.known(a, "j1"),
            Some(true),
            "a late 'not denied' cannot undo a revocation"
        );
    }

    #[test]
    fn a_not_denied_answer_is_asked_again_after_the_recheck_interval() {
        let cache = Revocations::default();
        let tenant = Uuid::now_v7();
        let stale = Instant::now().checked_sub(RECHECK + Duration::from_millis(10)).unwrap();
        cache.known.lock().unwrap().entry(tenant).or_default().insert(
            "j".into(),
            Known::Allowed {
                asked: stale,
                exp: i64::MAX,
            },
        );
        assert_eq!(cache.known(tenant, "j"), None);
    }

    #[test]
    fn the_map_stays_bounded() {
        let cache = Revocations::default();
        let tenant = Uuid::now_v7();
        let past = chrono::Utc::now().timestamp() - 10;
        for i in 0..CAPACITY + 10 {
            cache.remember(tenant, &format!("j{i}"), true, past);
        }
        let total: usize = cache.known.lock().unwrap().values().map(HashMap::len).sum();
        assert!(total < CAPACITY, "expired entries were dropped: {total}");
    }
}
