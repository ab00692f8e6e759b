//! Attempt counters for the endpoints attackers hammer: login, registration, password
//! reset, MFA and email verification. One [`RateLimiter`] serves both rate limits ("at
//! most 10 logins per minute from this IP") and lockouts ("5 wrong passwords lock the
//! account for 15 minutes": [`RateLimiter::check`] before, [`RateLimiter::hit`] on a
//! failure, [`RateLimiter::reset`] on success).
//!
//! Counters are fixed windows keyed by a caller-built string (e.g.
//! `login:ip:{tenant}:{ip}`): the first hit of a key opens a window of the given length,
//! every hit counts, and once the count passes the limit the answer is
//! [`Decision::Limited`] with the time until the window closes.
//!
//! Two backends, chosen by configuration:
//!
//! * in memory (the default): per-process counters in sharded maps, bounded in size
//!   (expired windows are swept periodically; when full, the window closest to its end
//!   makes room). Each node of a cluster counts on its own.
//! * Redis (`redis_url` / `TENANTRY_REDIS_URL`): one `INCR` + `PEXPIRE` Lua script per hit,
//!   atomic on the server, so every node shares the same counters.
//!
//! A limiter that cannot count never answers "allowed": if Redis is configured but
//! unreachable or slow, calls fail with [`LimiterError::Unavailable`] (503
//! `rate_limiter_unavailable`), because silently dropping the limits is exactly what a
//! brute-force attacker wants.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use tenantry_errors::{ApiError, ErrorCode};

/// The unit that per-address limits count: an IPv4 address (IPv4-mapped IPv6 included),
/// or the /64 of an IPv6 address — one host usually holds a whole /64, so per-address
/// counting would give it billions of budgets.
pub fn address_bucket(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(ipnet::Ipv6Net::new_assert(v6, 64).trunc().network()),
    }
}

/// Keys the in-memory backend holds at most (about 100 bytes each plus the key).
pub const DEFAULT_MEMORY_KEYS: usize = 200_000;
/// Prefix of every Redis key this limiter writes.
pub const DEFAULT_REDIS_PREFIX: &str = "tenantry:rl:";

const MEMORY_SHARDS: usize = 16;
/// How often a memory shard drops its expired windows.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// Longest a Redis call may take, connecting included, before it counts as unreachable:
/// a login waits at most this long for an answer it can trust.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);

/// Takes one hit back, never below zero and never touching the window's expiry.
const FORGIVE_SCRIPT: &str = r"
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then
  redis.call('DECR', KEYS[1])
end
return 0
";

/// Counts one hit; opens the window on the first one. Also re-arms a key that lost its
/// expiry (PTTL -1), so a counter can never live forever.
const HIT_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if n == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
";

/// The answer to one hit or check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead; `remaining` more hits fit in the current window.
    Allowed { remaining: u32 },
    /// Refuse; the window closes after `retry_after`.
    Limited { retry_after: Duration },
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allowed { .. })
    }

    /// `Ok` when allowed, else 429 `rate_limited` with `Retry-After` (whole seconds,
    /// rounded up).
    pub fn into_result(self) -> Result<(), ApiError> {
        match self {
            Decision::Allowed { .. } => Ok(()),
            Decision::Limited { retry_after } => Err(ApiError::rate_limited(
                retry_after.as_millis().div_ceil(1000).max(1) as u64,
            )),
        }
    }

    fn from_count(count: u64, limit: u32, left: Duration) -> Self {
        if count > u64::from(limit) {
            Decision::Limited { retry_after: left }
        } else {
            Decision::Allowed {
                remaining: limit - count as u32,
            }
        }
    }
}

/// Why no decision could be made. Never means "allowed".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimiterError {
    /// The counter store (Redis) did not answer, or not in time.
    #[error("the rate-limit store is unavailable: {0}")]
    Unavailable(String),
    /// A caller asked for something meaningless (a window shorter than 1 ms).
    #[error("invalid rate limit: {0}")]
    Invalid(&'static str),
}

impl From<LimiterError> for ApiError {
    fn from(e: LimiterError) -> Self {
        match e {
            LimiterError::Unavailable(why) => {
                // Once per request while Redis is down: the 503 summary in `middleware`
                // and `/readyz` carry it; one line per refusal would flood the log.
                tracing::debug!(error = %why, "rate limiter unavailable; refusing the request");
                ApiError::new(
                    ErrorCode::RateLimiterUnavailable,
                    "attempt limits cannot be checked right now; retry later",
                )
                .with_retry_after(1)
            }
            LimiterError::Invalid(what) => {
                tracing::error!(what, "invalid rate limit");
                ApiError::internal()
            }
        }
    }
}

/// Rate-limit and lockout counters (in memory or in Redis). Cheap to clone.
#[derive(Clone)]
pub struct RateLimiter {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Memory(Arc<MemoryCounters>),
    Redis(RedisCounters),
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("backend", &self.backend_name())
            .finish()
    }
}

impl RateLimiter {
    /// Per-process counters holding at most [`DEFAULT_MEMORY_KEYS`] keys.
    pub fn in_memory() -> Self {
        Self::in_memory_with_capacity(DEFAULT_MEMORY_KEYS)
    }

    /// Per-process counters holding at most `max_keys` keys.
    pub fn in_memory_with_capacity(max_keys: usize) -> Self {
        Self {
            backend: Backend::Memory(Arc::new(MemoryCounters::new(max_keys, MEMORY_SHARDS, SWEEP_EVERY))),
        }
    }

    /// Counters in Redis under [`DEFAULT_REDIS_PREFIX`]. Connects now, so a wrong URL or an
    /// unreachable server is reported at start-up; later outages fail the calls made
    /// during them (the connection is re-established in the background).
    pub async fn redis(url: &str) -> Result<Self, LimiterError> {
        Self::redis_with_prefix(url, DEFAULT_REDIS_PREFIX).await
    }

    /// [`redis`](Self::redis) with another key prefix (installations sharing one Redis,
    /// tests).
    pub async fn redis_with_prefix(url: &str, prefix: &str) -> Result<Self, LimiterError> {
        Ok(Self {
            backend: Backend::Redis(RedisCounters::connect(url, prefix).await?),
        })
    }

    /// Redis when a URL is configured (`redis_url`), else in memory.
    pub async fn connect(redis_url: Option<&str>) -> Result<Self, LimiterError> {
        match redis_url {
            Some(url) => Self::redis(url).await,
            None => Ok(Self::in_memory()),
        }
    }

    /// Whether the counter store answers (for `/readyz`): always in memory; one `PING`
    /// within the call timeout for Redis.
    pub async fn ping(&self) -> Result<(), LimiterError> {
        match &self.backend {
            Backend::Memory(_) => Ok(()),
            Backend::Redis(store) => {
                let mut conn = store.conn.clone();
                bounded(redis::cmd("PING").query_async::<String>(&mut conn))
                    .await
                    .map(|_| ())
            }
        }
    }

    /// `"memory"` or `"redis"`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }

    /// Counts one attempt for `key` in a window of `window` (opened by the key's first
    /// hit) and answers whether it is within `limit`. A limit of 0 refuses everything.
    pub async fn hit(&self, key: &str, limit: u32, window: Duration) -> Result<Decision, LimiterError> {
        if window < Duration::from_millis(1) {
            return Err(LimiterError::Invalid("the window must be at least 1 ms"));
        }
        let (count, left) = match &self.backend {
            Backend::Memory(m) => m.hit(key, window),
            Backend::Redis(r) => r.hit(key, window).await?,
        };
        Ok(Decision::from_count(count, limit, left))
    }

    /// What the next [`hit`](Self::hit) with `limit` would answer, without counting it:
    /// `Limited` once `limit` hits are in the current window (a locked account).
    pub async fn check(&self, key: &str, limit: u32) -> Result<Decision, LimiterError> {
        let current = match &self.backend {
            Backend::Memory(m) => m.current(key),
            Backend::Redis(r) => r.current(key).await?,
        };
        Ok(match current {
            Some((count, left)) if count >= u64::from(limit) => Decision::Limited { retry_after: left },
            Some((count, _)) => Decision::Allowed {
                remaining: limit - count as u32,
            },
            None => Decision::Allowed { remaining: limit },
        })
    }

    /// Takes back one [`hit`](Self::hit) of the current window: for an attempt counted
    /// before its work that ended without a verdict (the server, not the caller, failed).
    pub async fn forgive(&self, key: &str) -> Result<(), LimiterError> {
        match &self.backend {
            Backend::Memory(m) => {
                m.forgive(key);
                Ok(())
            }
            Backend::Redis(r) => r.forgive(key).await,
        }
    }

    /// Forgets `key`'s window (e.g. a successful login clears its failure count).
    pub async fn reset(&self, key: &str) -> Result<(), LimiterError> {
        match &self.backend {
            Backend::Memory(m) => {
                m.reset(key);
                Ok(())
            }
            Backend::Redis(r) => r.reset(key).await,
        }
    }
}

/// In-memory fixed windows, sharded to keep lock hold times short under load.
struct MemoryCounters {
    shards: Box<[Mutex<Shard>]>,
    hasher: std::collections::hash_map::RandomState,
    per_shard: usize,
    sweep_every: Duration,
}

struct Shard {
    windows: HashMap<String, Window>,
    next_sweep: Instant,
}

#[derive(Clone, Copy)]
struct Window {
    count: u64,
    ends: Instant,
}

impl MemoryCounters {
    fn new(max_keys: usize, shards: usize, sweep_every: Duration) -> Self {
        let shards = shards.max(1);
        let now = Instant::now();
        Self {
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Shard {
                        windows: HashMap::new(),
                        next_sweep: now + sweep_every,
                    })
                })
                .collect(),
            hasher: Default::default(),
            per_shard: max_keys.div_ceil(shards).max(1),
            sweep_every,
        }
    }

    fn shard(&self, key: &str) -> std::sync::MutexGuard<'_, Shard> {
        let i = self.hasher.hash_one(key) as usize % self.shards.len();
        // Every update is complete before a panic could happen, so a poisoned shard is fine.
        self.shards[i].lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn hit(&self, key: &str, window: Duration) -> (u64, Duration) {
        let now = Instant::now();
        let mut shard = self.shard(key);
        if now >= shard.next_sweep {
            shard.windows.retain(|_, w| w.ends > now);
            shard.next_sweep = now + self.sweep_every;
        }
        if let Some(w) = shard.windows.get_mut(key)
            && w.ends > now
        {
            w.count += 1;
            return (w.count, w.ends - now);
        }
        if !shard.windows.contains_key(key) && shard.windows.len() >= self.per_shard {
            shard.windows.retain(|_, w| w.ends > now);
            // Still full of live windows: drop the one that would end first, the counter
            // whose loss forgives the least.
            if shard.windows.len() >= self.per_shard
                && let Some(victim) = shard.windows.iter().min_by_key(|(_, w)| w.ends).map(|(k, _)| k.clone())
            {
                shard.windows.remove(&victim);
            }
        }
        shard.windows.insert(
            key.to_owned(),
            Window {
                count: 1,
                ends: now + window,
            },
        );
        (1, window)
    }

    fn current(&self, key: &str) -> Option<(u64, Duration)> {
        let now = Instant::now();
        let shard = self.shard(key);
        shard
            .windows
            .get(key)
            .filter(|w| w.ends > now)
            .map(|w| (w.count, w.ends - now))
    }

    fn forgive(&self, key: &str) {
        if let Some(w) = self.shard(key).windows.get_mut(key) {
            w.count = w.count.saturating_sub(1);
        }
    }

    fn reset(&self, key: &str) {
        self.shard(key).windows.remove(key);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).windows.len())
            .sum()
    }
}

/// Counters in Redis, shared by every node that uses the same server and prefix.
#[derive(Clone)]
struct RedisCounters {
    conn: ConnectionManager,
    hit_script: Arc<redis::Script>,
    forgive_script: Arc<redis::Script>,
    prefix: Arc<str>,
}

impl RedisCounters {
    async fn connect(url: &str, prefix: &str) -> Result<Self, LimiterError> {
        // Errors name the problem, never the URL (it may hold a password).
        let client =
            redis::Client::open(url).map_err(|e| LimiterError::Unavailable(format!("bad URL: {:?}", e.kind())))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(REDIS_TIMEOUT);
        let conn = tokio::time::timeout(REDIS_TIMEOUT * 2, ConnectionManager::new_with_config(client, config))
            .await
            .map_err(|_| LimiterError::Unavailable("connecting timed out".into()))?
            .map_err(unavailable)?;
        Ok(Self {
            conn,
            hit_script: Arc::new(redis::Script::new(HIT_SCRIPT)),
            forgive_script: Arc::new(redis::Script::new(FORGIVE_SCRIPT)),
            prefix: prefix.into(),
        })
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn hit(&self, key: &str, window: Duration) -> Result<(u64, Duration), LimiterError> {
        let mut conn = self.conn.clone();
        let millis = window.as_millis().min(i64::MAX as u128) as i64;
        let mut invocation = self.hit_script.key(self.key(key));
        invocation.arg(millis);
        let (count, ttl): (i64, i64) = bounded(invocation.invoke_async(&mut conn)).await?;
        Ok((count.max(1) as u64, Duration::from_millis(ttl.max(1) as u64)))
    }

    async fn current(&self, key: &str) -> Result<Option<(u64, Duration)>, LimiterError> {
        let mut conn = self.conn.clone();
        let key = self.key(key);
        let (count, ttl): (Option<i64>, i64) = bounded(
            redis::pipe()
                .atomic()
                .get(&key)
                .pttl(&key)
                .query_async::<(Option<i64>, i64)>(&mut conn),
        )
        .await?;
        // PTTL -2: no key; -1: no expiry (the next hit re-arms it; report a full second).
        Ok(match (count, ttl) {
            (Some(_), -2) | (None, _) => None,
            (Some(count), -1) => Some((count.max(0) as u64, Duration::from_secs(1))),
            (Some(count), ttl) => Some((count.max(0) as u64, Duration::from_millis(ttl.max(1) as u64))),
        })
    }

    async fn forgive(&self, key: &str) -> Result<(), LimiterError> {
        let mut conn = self.conn.clone();
        let invocation = self.forgive_script.key(self.key(key));
        bounded(invocation.invoke_async::<i64>(&mut conn)).await?;
        Ok(())
    }

    async fn reset(&self, key: &str) -> Result<(), LimiterError> {
        let mut conn = self.conn.clone();
        let key = self.key(key);
        bounded(redis::cmd("DEL").arg(&key).query_async::<i64>(&mut conn)).await?;
        Ok(())
    }
}

/// Runs one Redis call under [`REDIS_TIMEOUT`] (also while the connection is being
/// re-established, which the driver itself does not bound).
async fn bounded<T>(call: impl std::future::Future<Output = redis::RedisResult<T>>) -> Result<T, LimiterError> {
    match tokio::time::timeout(REDIS_TIMEOUT, call).await {
        Ok(result) => result.map_err(unavailable),
        Err(_) => Err(LimiterError::Unavailable("no answer in time".into())),
    }
}

fn unavailable(e: redis::RedisError) -> LimiterError {
    LimiterError::Unavailable(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    use tenantry_testkit::Service;

    const REDIS_ENV: &str = Service::Redis.var();

    /// Keys unique to this test run, so parallel tests and earlier runs never collide.
    fn unique(name: &str) -> String {
        format!("{name}:{}", uuid::Uuid::new_v4())
    }

    /// Drives the behaviour every backend must share.
    async fn window_behaviour(limiter: &RateLimiter) {
        let key = unique("login:ip");
        let window = Duration::from_secs(30);
        for remaining in [2, 1, 0] {
            assert_eq!(
                limiter.hit(&key, 3, window).await.unwrap(),
                Decision::Allowed { remaining }
            );
        }
        let Decision::Limited { retry_after } = limiter.hit(&key, 3, window).await.unwrap() else {
            panic!("the fourth hit must be limited");
        };
        assert!(
            retry_after <= window && retry_after > window - Duration::from_secs(5),
            "{retry_after:?}"
        );
        let e = limiter.hit(&key, 3, window).await.unwrap().into_result().unwrap_err();
        assert_eq!(e.code, ErrorCode::RateLimited);
        assert!((26..=30).contains(&e.retry_after.unwrap()), "{:?}", e.retry_after);

        // Another key has its own window.
        let other = unique("login:ip");
        assert_eq!(
            limiter.hit(&other, 3, window).await.unwrap(),
            Decision::Allowed { remaining: 2 }
        );

        // A window ends: counting starts over.
        let short = unique("verify");
        let ms = Duration::from_millis(200);
        assert!(limiter.hit(&short, 1, ms).await.unwrap().is_allowed());
        assert!(!limiter.hit(&short, 1, ms).await.unwrap().is_allowed());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            limiter.hit(&short, 1, ms).await.unwrap(),
            Decision::Allowed { remaining: 0 }
        );

        // A limit of 0 refuses everything.
        assert!(!limiter.hit(&unique("zero"), 0, window).await.unwrap().is_allowed());
        assert_eq!(
            limiter.hit(&unique("bad"), 1, Duration::ZERO).await,
            Err(LimiterError::Invalid("the window must be at least 1 ms"))
        );
    }

    /// Lockout: check before, hit on failure, reset on success.
    async fn lockout_behaviour(limiter: &RateLimiter) {
        let account = unique("lockout:acme:ada@example.com");
        let lockout = Duration::from_secs(900);
        assert_eq!(
            limiter.check(&account, 3).await.unwrap(),
            Decision::Allowed { remaining: 3 }
        );
        for _ in 0..3 {
            assert!(limiter.check(&account, 3).await.unwrap().is_allowed());
            limiter.hit(&account, 3, lockout).await.unwrap();
        }
        let Decision::Limited { retry_after } = limiter.check(&account, 3).await.unwrap() else {
            panic!("three failures lock the account");
        };
        assert!(
            retry_after > Duration::from_secs(890) && retry_after <= lockout,
            "{retry_after:?}"
        );
        // Checking does not count: still exactly three.
        for _ in 0..5 {
            limiter.check(&account, 3).await.unwrap();
        }
        assert_eq!(
            limiter.check(&account, 4).await.unwrap(),
            Decision::Allowed { remaining: 1 }
        );
        // A hit taken back no longer counts; the window keeps its end.
        limiter.forgive(&account).await.unwrap();
        assert_eq!(
            limiter.check(&account, 4).await.unwrap(),
            Decision::Allowed { remaining: 2 }
        );
        let Decision::Limited { retry_after: still } = limiter.check(&account, 2).await.unwrap() else {
            panic!("two hits are left in the window");
        };
        assert!(still > Duration::from_secs(890), "{still:?}");
        limiter.reset(&account).await.unwrap();
        assert_eq!(
            limiter.check(&account, 3).await.unwrap(),
            Decision::Allowed { remaining: 3 }
        );
        limiter.reset(&unique("never-seen")).await.unwrap();
        // Forgiving what was never counted changes nothing and never goes below zero.
        let fresh = unique("never-hit");
        limiter.forgive(&fresh).await.unwrap();
        assert_eq!(
            limiter.check(&fresh, 1).await.unwrap(),
            Decision::Allowed { remaining: 1 }
        );
    }

    /// Many concurrent hits on one key: exactly `limit` are allowed.
    async fn exact_under_concurrency(limiters: &[RateLimiter]) {
        let key = unique("register");
        let mut tasks = Vec::new();
        for i in 0..200 {
            let limiter = limiters[i % limiters.len()].clone();
            let key = key.clone();
            tasks.push(tokio::spawn(async move {
                limiter
                    .hit(&key, 57, Duration::from_secs(60))
                    .await
                    .unwrap()
                    .is_allowed()
            }));
        }
        let mut allowed = 0;
        for t in tasks {
            allowed += usize::from(t.await.unwrap());
        }
        assert_eq!(allowed, 57);
    }

    #[tokio::test]
    async fn memory_windows_limit_and_tell_when_to_retry() {
        window_behaviour(&RateLimiter::in_memory()).await;
    }

    #[tokio::test]
    async fn memory_lockout_counts_checks_and_resets() {
        lockout_behaviour(&RateLimiter::in_memory()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory_counts_exactly_under_concurrency() {
        exact_under_concurrency(&[RateLimiter::in_memory()]).await;
    }

    #[test]
    fn memory_stays_bounded_and_sweeps_expired_windows() {
        let m = MemoryCounters::new(64, 4, Duration::from_millis(50));
        for i in 0..1000 {
            m.hit(&format!("k{i}"), Duration::from_secs(60));
        }
        assert!(m.len() <= 64, "{} keys held", m.len());
        // When full, the window closest to its end is the one that makes room.
        let m = MemoryCounters::new(2, 1, Duration::from_secs(3600));
        m.hit("ends-late", Duration::from_secs(60));
        m.hit("ends-soon", Duration::from_secs(5));
        m.hit("ends-late", Duration::from_secs(60));
        m.hit("new", Duration::from_secs(60));
        assert_eq!(m.current("ends-late").map(|(n, _)| n), Some(2));
        assert_eq!(m.current("ends-soon"), None);
        assert_eq!(m.current("new").map(|(n, _)| n), Some(1));

        // Expired windows go at the next sweep, even when nothing is full.
        let m = MemoryCounters::new(1000, 1, Duration::from_millis(50));
        for i in 0..100 {
            m.hit(&format!("short{i}"), Duration::from_millis(10));
        }
        assert_eq!(m.len(), 100);
        std::thread::sleep(Duration::from_millis(80));
        m.hit("trigger", Duration::from_secs(60));
        assert_eq!(m.len(), 1, "expired windows were swept");
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_an_error_not_a_pass() {
        let started = Instant::now();
        let e = RateLimiter::redis("redis://127.0.0.1:1").await.unwrap_err();
        assert!(matches!(e, LimiterError::Unavailable(_)), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(RateLimiter::redis("http://nope").await.is_err());
        let api = ApiError::from(e);
        assert_eq!(api.code, ErrorCode::RateLimiterUnavailable);
        assert_eq!(api.code.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    }

    /// The limiter on the real Redis named by `TENANTRY_TEST_REDIS_URL`, under a prefix of
    /// its own; `None` (a recorded skip) when the variable is unset. Set but unusable fails.
    async fn redis_or_skip() -> Option<(String, String, RateLimiter)> {
        let url = tenantry_testkit::configured(Service::Redis)?;
        let prefix = format!("tenantry-test:{}:", uuid::Uuid::new_v4());
        let limiter = RateLimiter::redis_with_prefix(&url, &prefix)
            .await
            .unwrap_or_else(|e| panic!("{REDIS_ENV} is set but Redis is not usable: {e}"));
        assert_eq!(limiter.backend_name(), "redis");
        Some((url, prefix, limiter))
    }

    #[tokio::test]
    async fn redis_windows_limit_and_tell_when_to_retry() {
        let Some((_, _, limiter)) = redis_or_skip().await else {
            return;
        };
        window_behaviour(&limiter).await;
    }

    #[tokio::test]
    async fn redis_lockout_counts_checks_and_resets() {
        let Some((_, _, limiter)) = redis_or_skip().await else {
            return;
        };
        lockout_behaviour(&limiter).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_counters_are_shared_by_nodes_and_exact_under_concurrency() {
        let Some((url, prefix, node_a)) = redis_or_skip().await else {
            return;
        };
        // A second connection with the same prefix stands for another node.
        let node_b = RateLimiter::redis_with_prefix(&url, &prefix).await.unwrap();
        let key = unique("forgot");
        let window = Duration::from_secs(60);
        assert!(node_a.hit(&key, 2, window).await.unwrap().is_allowed());
        assert!(node_b.hit(&key, 2, window).await.unwrap().is_allowed());
        assert!(!node_a.hit(&key, 2, window).await.unwrap().is_allowed());
        assert!(!node_b.check(&key, 2).await.unwrap().is_allowed());
        exact_under_concurrency(&[node_a, node_b]).await;
    }

    #[tokio::test]
    async fn redis_going_away_fails_calls_instead_of_allowing() {
        let Some((url, prefix, _)) = redis_or_skip().await else {
            return;
        };
        let mut target = url::Url::parse(&url).unwrap_or_else(|e| panic!("{REDIS_ENV} is not a URL: {e}"));
        if target.scheme() != "redis" {
            tenantry_testkit::skip(Service::Redis, &format!("{REDIS_ENV} is not a redis:// TCP URL"));
            return;
        }
        let upstream = format!(
            "{}:{}",
            target.host_str().unwrap_or("127.0.0.1"),
            target.port().unwrap_or(6379)
        );
        // A TCP proxy we can pull the plug on, in front of the real server.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let proxy = {
            let conns = conns.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        return;
                    };
                    let upstream = upstream.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        }
                    });
                    conns.lock().unwrap().push(task.abort_handle());
                }
            })
        };
        target.set_host(Some("127.0.0.1")).unwrap();
        target.set_port(Some(port)).unwrap();
        let limiter = RateLimiter::redis_with_prefix(target.as_str(), &prefix).await.unwrap();
        let key = unique("mfa");
        assert!(
            limiter
                .hit(&key, 5, Duration::from_secs(60))
                .await
                .unwrap()
                .is_allowed()
        );

        proxy.abort();
        let _ = proxy.await;
        for conn in conns.lock().unwrap().drain(..) {
            conn.abort();
        }
        for _ in 0..3 {
            let started = Instant::now();
            let hit = limiter.hit(&key, 5, Duration::from_secs(60)).await;
            assert!(matches!(hit, Err(LimiterError::Unavailable(_))), "{hit:?}");
            assert!(matches!(
                limiter.check(&key, 5).await,
                Err(LimiterError::Unavailable(_))
            ));
            assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        }
    }
}
