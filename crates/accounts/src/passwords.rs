//! Password hashing (Argon2id, PHC strings) under admission control, and the tenant
//! password policy.
//!
//! Hashing is CPU- and memory-heavy on purpose, which makes it the cheapest way to take a
//! login server down: a password-spraying flood against one tenant would otherwise queue
//! hashes without bound and stall every tenant's logins behind it. So every hash and verify
//! on a request path goes through [`PasswordHasher`]:
//!
//! * the work runs on the blocking pool (never on the async workers), at most
//!   `limits.hash_workers` at once (a semaphore);
//! * at most `limits.hash_queue` more may wait for a worker, and waiting has a deadline
//!   (`limits.hash_max_wait_ms`);
//! * one tenant may hold at most `limits.hash_tenant_share_percent` of the running + waiting
//!   slots, so the rest stays available to other tenants;
//! * when there is no slot the call fails at once with [`HashError::Overloaded`] (503
//!   `overloaded` with `Retry-After`) instead of queueing: shedding costs microseconds,
//!   queueing costs everyone's latency.
//!
//! Cost parameters are per tenant (`settings.security.password_hash`, OWASP's 19 MiB / 2
//! passes / 1 lane by default). Verification reads the parameters from the stored PHC
//! string, so hashes made under older settings keep working; [`needs_rehash`] tells the
//! login to re-hash after a successful verify. Input is capped at [`MAX_PASSWORD_BYTES`]
//! before any hashing, so a huge "password" cannot turn into a denial of service either.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use argon2::password_hash::phc::Output;
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, PasswordHasher as _, Version};
use tenantry_controlplane::model::{PasswordHashParams, SecurityPolicy};
use tenantry_controlplane::{FieldError, ValidationErrors};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use tenantry_errors::ApiError;

/// Longest password accepted, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Largest cost a stored hash may ask for before verification refuses to run it (the same
/// bounds as `settings.security.password_hash`), so a planted or imported PHC string with
/// `m=4194304` cannot make one verify allocate 4 GiB.
const MAX_MEMORY_KIB: u32 = 1024 * 1024;
const MAX_ITERATIONS: u32 = 20;
const MAX_PARALLELISM: u32 = 16;

/// Guess of one hash's duration before any has been measured (for `Retry-After`).
const INITIAL_COST: Duration = Duration::from_millis(50);
/// Most distinct parameter sets whose dummy hash is kept (see [`PasswordHasher::verify_or_dummy`]).
const MAX_DUMMY_HASHES: usize = 64;
/// Largest Argon2 working memory kept between verifications, in 1 KiB blocks (64 MiB);
/// costlier parameter sets get a fresh buffer each time.
const MAX_KEPT_MEMORY_BLOCKS: usize = 64 * 1024;

/// Why a hash or verify did not produce an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    /// No hashing slot was free (or none became free in time); nothing was hashed.
    #[error("password hashing is saturated; retry in {retry_after_secs} s")]
    Overloaded { retry_after_secs: u64 },
    /// The password is longer than [`MAX_PASSWORD_BYTES`]; nothing was hashed.
    #[error("the password is longer than {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    /// The parameters (the tenant's, or a stored hash's) cannot be used.
    #[error("unusable Argon2 parameters: {0}")]
    InvalidParams(String),
    /// The hashing task failed (a panic on the blocking pool, an RNG failure).
    #[error("password hashing failed: {0}")]
    Internal(String),
}

impl From<HashError> for ApiError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Overloaded { retry_after_secs } => ApiError::overloaded(retry_after_secs),
            HashError::TooLong => ApiError::field("password", format!("must be at most {MAX_PASSWORD_BYTES} bytes")),
            other => {
                tracing::error!(error = %other, "password hashing failed");
                ApiError::internal()
            }
        }
    }
}

/// Capacity of a [`PasswordHasher`] (from `limits.hash_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingLimits {
    /// Hashes computed at once.
    pub workers: usize,
    /// Hashes allowed to wait for a worker.
    pub queue: usize,
    /// Share (1–100 %) of `workers + queue` one tenant may hold.
    pub tenant_share_percent: u8,
    /// Longest wait for a worker.
    pub max_wait: Duration,
}

impl HashingLimits {
    /// Running + waiting slots in all.
    pub fn capacity(&self) -> usize {
        self.workers.max(1) + self.queue
    }

    /// Running + waiting slots one tenant may hold (at least 1, so a tenant is never shut
    /// out entirely by rounding).
    pub fn tenant_capacity(&self) -> usize {
        let share = usize::from(self.tenant_share_percent.clamp(1, 100));
        (self.capacity() * share).div_ceil(100).max(1)
    }
}

impl Default for HashingLimits {
    fn default() -> Self {
        Self {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            queue: 32,
            tenant_share_percent: 50,
            max_wait: Duration::from_secs(2),
        }
    }
}

/// Admission-controlled Argon2id hashing, shared by all tenants. Cheap to clone (one
/// `Arc`); keep one per process (in [`Accounts`](crate::Accounts)).
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    limits: HashingLimits,
    workers: Arc<Semaphore>,
    slots: Mutex<Slots>,
    /// Recent duration of one hash in microseconds (moving average), for `Retry-After`.
    cost_micros: AtomicU64,
    /// Dummy hash per parameter set, verified against when the user does not exist.
    dummies: Mutex<HashMap<PasswordHashParams, String>>,
    /// Argon2 working memory of finished verifications, at most one buffer per worker:
    /// reusing it spares each verification allocating and zeroing 19 MiB (by default).
    memory: Mutex<Vec<Vec<Block>>>,
}

/// Running + waiting slots held, in all and per tenant.
#[derive(Default)]
struct Slots {
    total: usize,
    by_tenant: HashMap<String, usize>,
}

/// One admitted call. Dropping it (the work ended, failed, or the caller went away while
/// waiting) gives the slot back.
struct Slot {
    inner: Arc<Inner>,
    tenant: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut slots = self.inner.slots();
        slots.total -= 1;
        if let Some(held) = slots.by_tenant.get_mut(&self.tenant) {
            *held -= 1;
            if *held == 0 {
                slots.by_tenant.remove(&self.tenant);
            }
        }
    }
}

impl Inner {
    fn slots(&self) -> MutexGuard<'_, Slots> {
        // The counters stay consistent even if a holder panicked: every update is one step.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Seconds until a slot is likely free: the whole capacity drained by the workers at
    /// the recent cost per hash (1 s at least, 60 s at most).
    fn retry_after_secs(&self) -> u64 {
        let cost = Duration::from_micros(self.cost_micros.load(Ordering::Relaxed)).as_secs_f64();
        let rounds = self.limits.capacity() as f64 / self.limits.workers.max(1) as f64;
        (rounds * cost).ceil().clamp(1.0, 60.0) as u64
    }

    fn take_memory(&self) -> Vec<Block> {
        self.memory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default()
    }

    fn keep_memory(&self, buffer: Vec<Block>) {
        let mut kept = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        if buffer.capacity() <= MAX_KEPT_MEMORY_BLOCKS && kept.len() < self.limits.workers.max(1) {
            kept.push(buffer);
        }
    }

    fn record_cost(&self, took: Duration) {
        let sample = took.as_micros().min(u128::from(u32::MAX)) as u64;
        let old = self.cost_micros.load(Ordering::Relaxed);
        // A lost update between racing workers only skews an estimate.
        self.cost_micros.store(old - old / 8 + sample / 8, Ordering::Relaxed);
    }
}

impl PasswordHasher {
    pub fn new(limits: HashingLimits) -> Self {
        Self {
            inner: Arc::new(Inner {
                workers: Arc::new(Semaphore::new(limits.workers.max(1))),
                limits,
                slots: Mutex::new(Slots::default()),
                cost_micros: AtomicU64::new(INITIAL_COST.as_micros() as u64),
                dummies: Mutex::new(HashMap::new()),
                memory: Mutex::new(Vec::new()),
            }),
        }
    }

    pub fn limits(&self) -> HashingLimits {
        self.inner.limits
    }

    /// Hashes `password` with `params` into a PHC string (`$argon2id$v=19$m=…,t=…,p=…$…`)
    /// with a fresh salt. `tenant` is the admission key (the tenant's slug or id).
    ///
    /// Fails fast with [`HashError::TooLong`] or [`HashError::Overloaded`] before hashing.
    pub async fn hash(&self, tenant: &str, params: &PasswordHashParams, password: &str) -> Result<String, HashError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(HashError::TooLong);
        }
        let argon2 = argon2_for(params)?;
        let password = Zeroizing::new(password.as_bytes().to_vec());
        self.run(tenant, move || hash_with(&argon2, &password)).await?
    }

    /// Checks `password` against a stored PHC string, with the parameters the string names.
    ///
    /// A password longer than [`MAX_PASSWORD_BYTES`] or a string that is not an Argon2 PHC
    /// string is `Ok(false)` without hashing; a stored cost beyond the settings' bounds is
    /// [`HashError::InvalidParams`].
    pub async fn verify(&self, tenant: &str, phc: &str, password: &str) -> Result<bool, HashError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(false);
        }
        let Ok(parsed) = PasswordHash::new(phc) else {
            tracing::warn!("a stored password hash is not a PHC string");
            return Ok(false);
        };
        if ![argon2::ARGON2ID_IDENT, argon2::ARGON2I_IDENT, argon2::ARGON2D_IDENT].contains(&parsed.algorithm) {
            tracing::warn!(algorithm = %parsed.algorithm, "a stored password hash is not Argon2");
            return Ok(false);
        }
        check_stored_cost(&parsed)?;
        let password = Zeroizing::new(password.as_bytes().to_vec());
        let inner = self.inner.clone();
        self.run(tenant, move || {
            let mut memory = inner.take_memory();
            let valid = verify_parsed(&parsed, &password, &mut memory);
            inner.keep_memory(memory);
            valid
        })
        .await
    }

    /// [`verify`](Self::verify) for a login: when the user has no stored hash (unknown
    /// email, no password set), a dummy hash with the tenant's parameters is verified
    /// instead and the answer is `false`, so the response time does not tell whether the
    /// account exists.
    pub async fn verify_or_dummy(
        &self,
        tenant: &str,
        stored: Option<&str>,
        params: &PasswordHashParams,
        password: &str,
    ) -> Result<bool, HashError> {
        if let Some(phc) = stored {
            return self.verify(tenant, phc, password).await;
        }
        let cached = self
            .inner
            .dummies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(params)
            .cloned();
        let dummy = match cached {
            Some(dummy) => dummy,
            None => {
                let dummy = self.hash(tenant, params, &tenantry_crypto::random_token(32)).await?;
                let mut dummies = self.inner.dummies.lock().unwrap_or_else(PoisonError::into_inner);
                if dummies.len() >= MAX_DUMMY_HASHES {
                    dummies.clear();
                }
                dummies.entry(*params).or_insert(dummy).clone()
            }
        };
        self.verify(tenant, &dummy, password).await?;
        Ok(false)
    }

    /// Runs `job` on the blocking pool once `tenant` is admitted and a worker is free.
    async fn run<T: Send + 'static>(
        &self,
        tenant: &str,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let slot = self.admit(tenant)?;
        let permit =
            match tokio::time::timeout(self.inner.limits.max_wait, self.inner.workers.clone().acquire_owned()).await {
                Ok(Ok(permit)) => permit,
                Ok(Err(_)) => return Err(HashError::Internal("the hashing pool is closed".into())),
                Err(_) => {
                    metrics::counter!("password_hash_rejected_total", "reason" => "wait_timeout").increment(1);
                    return Err(HashError::Overloaded {
                        retry_after_secs: self.inner.retry_after_secs(),
                    });
                }
            };
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            // Slot and permit move into the task: if the caller goes away mid-hash, the CPU
            // is still busy, so neither may be handed to someone else before the work ends.
            let (_slot, _permit) = (slot, permit);
            let started = Instant::now();
            let out = job();
            inner.record_cost(started.elapsed());
            out
        })
        .await
        .map_err(|e| HashError::Internal(format!("hashing task: {e}")))
    }

    /// Takes a running-or-waiting slot for `tenant`, or refuses at once.
    fn admit(&self, tenant: &str) -> Result<Slot, HashError> {
        let limits = &self.inner.limits;
        let mut slots = self.inner.slots();
        let held = slots.by_tenant.get(tenant).copied().unwrap_or(0);
        let reason = if slots.total >= limits.capacity() {
            Some("queue_full")
        } else if held >= limits.tenant_capacity() {
            Some("tenant_share")
        } else {
            None
        };
        if let Some(reason) = reason {
            drop(slots);
            metrics::counter!("password_hash_rejected_total", "reason" => reason).increment(1);
            return Err(HashError::Overloaded {
                retry_after_secs: self.inner.retry_after_secs(),
            });
        }
        slots.total += 1;
        *slots.by_tenant.entry(tenant.to_owned()).or_default() += 1;
        Ok(Slot {
            inner: self.inner.clone(),
            tenant: tenant.to_owned(),
        })
    }

    #[cfg(test)]
    fn held(&self, tenant: Option<&str>) -> usize {
        let slots = self.inner.slots();
        match tenant {
            Some(t) => slots.by_tenant.get(t).copied().unwrap_or(0),
            None => slots.total,
        }
    }
}

/// Whether a stored hash should be replaced after a successful verify: it is not Argon2id
/// version 0x13 with exactly `params` (and the default 32-byte output), or it does not
/// parse at all.
pub fn needs_rehash(phc: &str, params: &PasswordHashParams) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return true;
    };
    if parsed.algorithm != argon2::ARGON2ID_IDENT || parsed.version != Some(Version::V0x13.into()) {
        return true;
    }
    match Params::try_from(&parsed) {
        Ok(stored) => {
            stored.m_cost() != params.memory_kib
                || stored.t_cost() != params.iterations
                || stored.p_cost() != params.parallelism
                || stored.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN) != Params::DEFAULT_OUTPUT_LEN
        }
        Err(_) => true,
    }
}

fn argon2_for(params: &PasswordHashParams) -> Result<Argon2<'static>, HashError> {
    let p = Params::new(params.memory_kib, params.iterations, params.parallelism, None)
        .map_err(|e| HashError::InvalidParams(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, p))
}

fn hash_with(argon2: &Argon2<'_>, password: &[u8]) -> Result<String, HashError> {
    argon2
        .hash_password(password)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Internal(e.to_string()))
}

fn check_stored_cost(parsed: &PasswordHash) -> Result<(), HashError> {
    let stored = Params::try_from(parsed).map_err(|e| HashError::InvalidParams(e.to_string()))?;
    if stored.m_cost() > MAX_MEMORY_KIB || stored.t_cost() > MAX_ITERATIONS || stored.p_cost() > MAX_PARALLELISM {
        return Err(HashError::InvalidParams(format!(
            "a stored hash asks for m={}, t={}, p={}, beyond the allowed cost",
            stored.m_cost(),
            stored.t_cost(),
            stored.p_cost()
        )));
    }
    Ok(())
}

/// Checks `password` against `parsed` (algorithm, version, cost and salt from the PHC
/// string), computing the hash in `memory`, which grows as needed and may be reused from
/// an earlier call: Argon2 writes every block before it reads it, so old contents do not
/// change the result.
pub fn verify_parsed(parsed: &PasswordHash, password: &[u8], memory: &mut Vec<Block>) -> bool {
    match compute_matches(parsed, password, memory) {
        Ok(matches) => matches,
        Err(e) => {
            tracing::warn!(error = %e, "a stored password hash could not be checked");
            false
        }
    }
}

fn compute_matches(parsed: &PasswordHash, password: &[u8], memory: &mut Vec<Block>) -> Result<bool, String> {
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return Err("no salt or no hash in the PHC string".into());
    };
    let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).map_err(|e| e.to_string())?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(|e| e.to_string())?,
        None => Version::default(),
    };
    let params = Params::try_from(parsed).map_err(|e| e.to_string())?;
    let blocks = params.block_count();
    if memory.len() < blocks {
        // Exactly what is needed (the kept size stays bounded), and an allocation failure
        // is an answer, not an abort.
        memory
            .try_reserve_exact(blocks - memory.len())
            .map_err(|_| format!("no memory for {blocks} Argon2 blocks"))?;
        memory.resize(blocks, Block::default());
    }
    let mut computed = [0u8; Output::MAX_LENGTH];
    let computed = &mut computed[..expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt, computed, &mut memory[..blocks])
        .map_err(|e| e.to_string())?;
    // `Output` compares in constant time.
    Ok(Output::new(computed).map_err(|e| e.to_string())? == *expected)
}

/// Hashes `password` with the default (OWASP) parameters, without admission control.
///
/// For start-up work (the `--dev` demo user) and callers not yet moved to
/// [`PasswordHasher`]; request paths should use [`PasswordHasher::hash`].
pub async fn hash(password: String) -> Result<String, ApiError> {
    let password = Zeroizing::new(password);
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(HashError::TooLong.into());
    }
    let argon2 = argon2_for(&PasswordHashParams::default())?;
    tokio::task::spawn_blocking(move || hash_with(&argon2, password.as_bytes()))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(ApiError::from)
}

/// Checks `password` against a stored PHC string (any Argon2 parameters within the
/// allowed cost), without admission control. Request paths should use
/// [`PasswordHasher::verify`].
pub async fn verify(phc: String, password: String) -> bool {
    let password = Zeroizing::new(password);
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(&phc) else {
        return false;
    };
    if check_stored_cost(&parsed).is_err() {
        return false;
    }
    tokio::task::spawn_blocking(move || verify_parsed(&parsed, password.as_bytes(), &mut Vec::new()))
        .await
        .unwrap_or(false)
}

/// Passwords nobody may choose (`password_deny_list_file`: one per line, `#` comments),
/// compared without case. Loaded once at start.
#[derive(Debug, Default)]
pub struct DenyList(std::collections::HashSet<String>);

impl DenyList {
    pub fn load(path: &std::path::Path) -> std::io::Result<Self> {
        Ok(Self::parse(&std::fs::read_to_string(path)?))
    }

    pub fn parse(text: &str) -> Self {
        Self(
            text.lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .map(str::to_lowercase)
                .collect(),
        )
    }

    pub fn contains(&self, password: &str) -> bool {
        self.0.contains(&password.to_lowercase())
    }
}

/// Checks a new password against the tenant's policy; every failed rule is one message
/// on `field`.
pub fn check_policy(
    policy: &SecurityPolicy,
    deny_list: Option<&DenyList>,
    email: &str,
    password: &str,
    field: &str,
) -> Result<(), ApiError> {
    let mut problems = Vec::new();
    if policy.password_deny_list {
        match deny_list {
            Some(list) if list.contains(password) => problems.push("is too common; choose another".to_owned()),
            Some(_) => {}
            None => {
                return Err(ApiError::new(
                    tenantry_errors::ErrorCode::PasswordDenyListMissing,
                    "the tenant checks new passwords against a deny-list and this installation has none \
                     (password_deny_list_file)",
                ));
            }
        }
    }
    let chars = password.chars().count();
    if password.len() > MAX_PASSWORD_BYTES {
        problems.push(format!("must be at most {MAX_PASSWORD_BYTES} bytes"));
    }
    if chars < policy.password_min_length as usize {
        problems.push(format!("must be at least {} characters", policy.password_min_length));
    }
    let rules = [
        (
            policy.password_require_lowercase,
            password.chars().any(char::is_lowercase),
            "a lowercase letter",
        ),
        (
            policy.password_require_uppercase,
            password.chars().any(char::is_uppercase),
            "an uppercase letter",
        ),
        (
            policy.password_require_digit,
            password.chars().any(|c| c.is_ascii_digit()),
            "a digit",
        ),
        (
            policy.password_require_symbol,
            password.chars().any(|c| !c.is_alphanumeric() && !c.is_whitespace()),
            "a symbol",
        ),
    ];
    for (required, present, what) in rules {
        if required && !present {
            problems.push(format!("must contain {what}"));
        }
    }
    if !email.is_empty() && password.trim().eq_ignore_ascii_case(email.trim()) {
        problems.push("must not be the email address".to_owned());
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(ApiError::validation(ValidationErrors(
        problems
            .into_iter()
            .map(|message| FieldError {
                field: field.to_owned(),
                message,
            })
            .collect(),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cheapest parameters the settings allow, so tests spend their time on behaviour.
    const CHEAP: PasswordHashParams = PasswordHashParams {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };
    const KEYCLOAK: PasswordHashParams = PasswordHashParams {
        memory_kib: 7168,
        iterations: 5,
        parallelism: 1,
    };

    fn tiny(workers: usize, queue: usize, share: u8, max_wait: Duration) -> PasswordHasher {
        PasswordHasher::new(HashingLimits {
            workers,
            queue,
            tenant_share_percent: share,
            max_wait,
        })
    }

    /// Holds `tenant`'s slot and the pool's only worker until the returned sender is
    /// dropped or sent to; returns once the job is running.
    async fn occupy(
        hasher: &PasswordHasher,
        tenant: &str,
    ) -> (std::sync::mpsc::Sender<()>, tokio::task::JoinHandle<()>) {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let h = hasher.clone();
        let tenant = tenant.to_owned();
        let task = tokio::spawn(async move {
            h.run(&tenant, move || {
                let _ = started_tx.send(());
                let _ = wait.recv();
            })
            .await
            .unwrap();
        });
        started.await.expect("the occupying job started");
        (release, task)
    }

    fn assert_fast_overload(result: Result<impl std::fmt::Debug, HashError>, started: Instant) {
        let took = started.elapsed();
        assert!(
            matches!(result, Err(HashError::Overloaded { retry_after_secs }) if retry_after_secs >= 1),
            "{result:?}"
        );
        assert!(took < Duration::from_millis(50), "refusing took {took:?}");
    }

    #[test]
    fn kept_memory_gives_the_same_answers_as_the_argon2_crate() {
        use argon2::PasswordVerifier as _;
        let small = |m, t, p| Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(m, t, p, None).unwrap());
        // Hashes of other passwords, costs and variants, checked one after the other in the
        // same buffer: what an earlier verification left behind must not change an answer.
        let cases = [
            (
                small(2048, 2, 1).hash_password(b"first secret").unwrap().to_string(),
                "first secret",
            ),
            (
                small(1024, 3, 2).hash_password(b"second secret").unwrap().to_string(),
                "second secret",
            ),
            (
                Argon2::new(
                    Algorithm::Argon2i,
                    Version::V0x10,
                    Params::new(1024, 1, 1, None).unwrap(),
                )
                .hash_password(b"old scheme")
                .unwrap()
                .to_string(),
                "old scheme",
            ),
            (
                small(4096, 1, 1).hash_password(b"third secret").unwrap().to_string(),
                "third secret",
            ),
        ];
        let mut memory = Vec::new();
        for _ in 0..2 {
            for (phc, password) in &cases {
                let parsed = PasswordHash::new(phc).unwrap();
                for attempt in [*password, "wrong", ""] {
                    let stock = Argon2::default().verify_password(attempt.as_bytes(), &parsed).is_ok();
                    assert_eq!(
                        verify_parsed(&parsed, attempt.as_bytes(), &mut memory),
                        stock,
                        "{phc} / {attempt}"
                    );
                    assert_eq!(stock, attempt == *password);
                }
            }
        }
        // The buffer grew to the largest cost seen (4096 blocks) and was reused, not regrown.
        assert_eq!(memory.len(), 4096);
        let no_salt = PasswordHash::new("$argon2id$v=19$m=1024,t=1,p=1").unwrap();
        assert!(!verify_parsed(&no_salt, b"anything", &mut memory));
    }

    #[tokio::test]
    async fn verifications_keep_at_most_one_buffer_per_worker() {
        let limits = HashingLimits {
            workers: 2,
            ..HashingLimits::default()
        };
        let hasher = PasswordHasher::new(limits);
        let params = PasswordHashParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        };
        let phc = hasher.hash("acme", &params, "pw one").await.unwrap();
        let runs: Vec<_> = (0..6)
            .map(|_| {
                let (hasher, phc) = (hasher.clone(), phc.clone());
                tokio::spawn(async move { hasher.verify("acme", &phc, "pw one").await })
            })
            .collect();
        for run in runs {
            assert!(run.await.unwrap().unwrap());
        }
        let kept = hasher.inner.memory.lock().unwrap();
        assert!(!kept.is_empty() && kept.len() <= 2, "{} buffers kept", kept.len());
        assert!(kept.iter().all(|b| b.len() == 1024));
    }

    #[tokio::test]
    async fn hashes_carry_the_tenant_parameters_and_verify() {
        let hasher = PasswordHasher::new(HashingLimits::default());
        let phc = hasher
            .hash("acme", &PasswordHashParams::default(), "correct horse battery")
            .await
            .unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        let kc = hasher.hash("acme", &KEYCLOAK, "correct horse battery").await.unwrap();
        assert!(kc.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{kc}");
        for stored in [&phc, &kc] {
            assert!(hasher.verify("acme", stored, "correct horse battery").await.unwrap());
            assert!(!hasher.verify("acme", stored, "correct horse batterY").await.unwrap());
        }
        assert!(!hasher.verify("acme", "not a phc", "x").await.unwrap());
        let again = hasher.hash("acme", &KEYCLOAK, "correct horse battery").await.unwrap();
        assert_ne!(kc, again, "fresh salt");
        assert_eq!(hasher.held(None), 0, "every slot was given back");
        let bad = PasswordHashParams {
            parallelism: 0,
            ..CHEAP
        };
        assert!(matches!(
            hasher.hash("acme", &bad, "pw").await,
            Err(HashError::InvalidParams(_))
        ));
    }

    #[tokio::test]
    async fn free_functions_still_hash_with_the_default_and_verify_any_params() {
        let phc = hash("correct horse battery".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify(phc.clone(), "correct horse battery".into()).await);
        assert!(!verify(phc.clone(), "correct horse batterY".into()).await);
        assert!(!verify("not a phc".into(), "x".into()).await);
        let kc = PasswordHasher::new(HashingLimits::default())
            .hash("t", &KEYCLOAK, "pw")
            .await
            .unwrap();
        assert!(verify(kc, "pw".into()).await);
        assert!(hash("x".repeat(MAX_PASSWORD_BYTES + 1)).await.is_err());
    }

    #[tokio::test]
    async fn needs_rehash_when_algorithm_or_cost_differ() {
        let hasher = PasswordHasher::new(HashingLimits::default());
        let kc = hasher.hash("t", &KEYCLOAK, "pw").await.unwrap();
        assert!(!needs_rehash(&kc, &KEYCLOAK));
        assert!(needs_rehash(&kc, &PasswordHashParams::default()));
        assert!(needs_rehash(
            &kc,
            &PasswordHashParams {
                iterations: 4,
                ..KEYCLOAK
            }
        ));
        assert!(needs_rehash(
            &kc,
            &PasswordHashParams {
                parallelism: 2,
                ..KEYCLOAK
            }
        ));
        assert!(needs_rehash(
            &kc,
            &PasswordHashParams {
                memory_kib: 7169,
                ..KEYCLOAK
            }
        ));

        // Same cost, other Argon2 variant: verifies, but should become Argon2id.
        let p = Params::new(KEYCLOAK.memory_kib, KEYCLOAK.iterations, KEYCLOAK.parallelism, None).unwrap();
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, p)
            .hash_password(b"pw")
            .unwrap()
            .to_string();
        assert!(argon2i.starts_with("$argon2i$"), "{argon2i}");
        assert!(hasher.verify("t", &argon2i, "pw").await.unwrap());
        assert!(needs_rehash(&argon2i, &KEYCLOAK));

        let bcrypt = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
        assert!(needs_rehash(bcrypt, &KEYCLOAK));
        assert_eq!(
            hasher.verify("t", bcrypt, "pw").await,
            Ok(false),
            "not Argon2: no match, no error"
        );
        let scrypt = "$scrypt$ln=16,r=8,p=1$aM15713r3Xsvxbi31lqr1Q$nFNh2CVHVjNldFVKDHDlm4CbdRSCdEBsjjJxD+iCs5E";
        assert_eq!(hasher.verify("t", scrypt, "pw").await, Ok(false));
        assert!(needs_rehash("", &KEYCLOAK));
    }

    #[tokio::test]
    async fn a_saturated_pool_refuses_fast_but_admits_another_tenant() {
        // One worker, one waiting slot, half of the two slots per tenant.
        let stored = hash("a real stored hash".into()).await.unwrap();
        let hasher = tiny(1, 1, 50, Duration::from_secs(30));
        assert_eq!(hasher.limits().tenant_capacity(), 1);
        let (release, occupier) = occupy(&hasher, "flood").await;

        // The flooded tenant has used its share: refused at once, hash and verify alike.
        let started = Instant::now();
        assert_fast_overload(hasher.hash("flood", &CHEAP, "guess-1").await, started);
        let started = Instant::now();
        assert_fast_overload(hasher.verify("flood", &stored, "guess-2").await, started);

        // Another tenant still gets the waiting slot: it is admitted and waits for the worker.
        let h = hasher.clone();
        let mut quiet = tokio::spawn(async move { h.hash("quiet", &CHEAP, "quiet password").await });
        tokio::time::timeout(Duration::from_secs(5), async {
            while hasher.held(Some("quiet")) == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await
        .expect("the other tenant was admitted");
        assert!(
            tokio::time::timeout(Duration::from_millis(100), &mut quiet)
                .await
                .is_err(),
            "it waits for the worker instead of being refused"
        );

        // Now every slot is taken: a third tenant is refused at once as well.
        let started = Instant::now();
        assert_fast_overload(hasher.hash("third", &CHEAP, "pw").await, started);

        release.send(()).unwrap();
        occupier.await.unwrap();
        let phc = quiet.await.unwrap().expect("the admitted call completes");
        assert!(hasher.verify("quiet", &phc, "quiet password").await.unwrap());
        assert_eq!(hasher.held(None), 0);
        hasher
            .hash("flood", &CHEAP, "pw")
            .await
            .expect("admitted again once drained");
    }

    #[tokio::test]
    async fn waiting_for_a_worker_has_a_deadline() {
        let hasher = tiny(1, 4, 100, Duration::from_millis(100));
        let (release, occupier) = occupy(&hasher, "a").await;
        let started = Instant::now();
        let result = hasher.hash("b", &CHEAP, "pw").await;
        let took = started.elapsed();
        assert!(matches!(result, Err(HashError::Overloaded { .. })), "{result:?}");
        assert!(
            took >= Duration::from_millis(90) && took < Duration::from_secs(5),
            "{took:?}"
        );
        assert_eq!(hasher.held(Some("b")), 0, "the timed-out waiter left its slot");
        drop(release);
        occupier.await.unwrap();
    }

    #[tokio::test]
    async fn a_caller_that_goes_away_while_waiting_frees_its_slot() {
        let hasher = tiny(1, 1, 100, Duration::from_secs(30));
        let (release, occupier) = occupy(&hasher, "a").await;
        let h = hasher.clone();
        let waiter = tokio::spawn(async move { h.hash("b", &CHEAP, "pw").await });
        while hasher.held(Some("b")) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(matches!(
            hasher.hash("c", &CHEAP, "pw").await,
            Err(HashError::Overloaded { .. })
        ));
        waiter.abort();
        let _ = waiter.await;
        assert_eq!(hasher.held(None), 1, "only the running job holds a slot");
        let h = hasher.clone();
        let next = tokio::spawn(async move { h.hash("c", &CHEAP, "pw").await });
        drop(release);
        occupier.await.unwrap();
        next.await.unwrap().expect("admitted into the freed slot");
    }

    #[tokio::test]
    async fn an_oversize_password_is_refused_without_hashing() {
        // The only worker is busy and there is no queue: anything that reached the pool
        // would be `Overloaded`, so `TooLong` / `false` prove nothing was hashed.
        let hasher = tiny(1, 0, 100, Duration::from_secs(30));
        let huge = "x".repeat(MAX_PASSWORD_BYTES + 1);
        let phc = hasher.hash("b", &CHEAP, &huge[..MAX_PASSWORD_BYTES]).await.unwrap();
        assert!(
            hasher.verify("b", &phc, &huge[..MAX_PASSWORD_BYTES]).await.unwrap(),
            "the limit itself is fine"
        );
        let (release, occupier) = occupy(&hasher, "a").await;
        let started = Instant::now();
        assert_eq!(hasher.hash("b", &CHEAP, &huge).await, Err(HashError::TooLong));
        assert_eq!(hasher.verify("b", &phc, &huge).await, Ok(false));
        assert!(started.elapsed() < Duration::from_millis(50));
        assert!(matches!(
            hasher.hash("b", &CHEAP, "short enough").await,
            Err(HashError::Overloaded { .. })
        ));
        let e = ApiError::from(HashError::TooLong);
        assert_eq!(e.code, tenantry_errors::ErrorCode::ValidationFailed);
        drop(release);
        occupier.await.unwrap();
    }

    #[tokio::test]
    async fn stored_hashes_beyond_the_allowed_cost_are_not_run() {
        let hasher = PasswordHasher::new(HashingLimits::default());
        let cheap = hasher.hash("t", &CHEAP, "pw").await.unwrap();
        let huge = cheap.replacen("m=1024,", "m=4194304,", 1);
        assert!(PasswordHash::new(&huge).is_ok(), "{huge}");
        assert!(matches!(
            hasher.verify("t", &huge, "pw").await,
            Err(HashError::InvalidParams(_))
        ));
        assert!(!verify(huge, "pw".into()).await);
    }

    #[tokio::test]
    async fn unknown_users_cost_a_verify_and_never_match() {
        let hasher = PasswordHasher::new(HashingLimits::default());
        let phc = hasher.hash("t", &CHEAP, "pw").await.unwrap();
        assert!(hasher.verify_or_dummy("t", Some(&phc), &CHEAP, "pw").await.unwrap());
        assert!(!hasher.verify_or_dummy("t", Some(&phc), &CHEAP, "nope").await.unwrap());
        assert!(!hasher.verify_or_dummy("t", None, &CHEAP, "pw").await.unwrap());
        assert!(!hasher.verify_or_dummy("t", None, &CHEAP, "").await.unwrap());
        let dummies = hasher.inner.dummies.lock().unwrap();
        assert!(dummies[&CHEAP].starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
    }

    #[test]
    fn overloaded_becomes_a_503_with_retry_after() {
        let e = ApiError::from(HashError::Overloaded { retry_after_secs: 3 });
        assert_eq!(e.code, tenantry_errors::ErrorCode::Overloaded);
        assert_eq!(e.retry_after, Some(3));
        let limits = HashingLimits {
            workers: 2,
            queue: 30,
            tenant_share_percent: 50,
            max_wait: Duration::from_secs(1),
        };
        assert_eq!((limits.capacity(), limits.tenant_capacity()), (32, 16));
        assert_eq!(
            HashingLimits {
                tenant_share_percent: 1,
                ..limits
            }
            .tenant_capacity(),
            1
        );
        assert_eq!(
            HashingLimits {
                tenant_share_percent: 100,
                ..limits
            }
            .tenant_capacity(),
            32
        );
    }

    #[test]
    fn policy_lists_every_broken_rule() {
        let policy = SecurityPolicy {
            password_min_length: 10,
            password_require_uppercase: true,
            password_require_digit: true,
            ..SecurityPolicy::default()
        };
        let e = check_policy(&policy, None, "a@b.c", "short", "password").unwrap_err();
        assert_eq!(e.errors.len(), 3, "{:?}", e.errors);
        assert!(check_policy(&policy, None, "a@b.c", "Longenough1", "password").is_ok());
        let same = SecurityPolicy::default();
        assert!(check_policy(&same, None, "ada@example.com", "ADA@example.com", "password").is_err());
        assert!(check_policy(&same, None, "a@b.c", &"x".repeat(2000), "password").is_err());
        let listed = SecurityPolicy {
            password_deny_list: true,
            ..SecurityPolicy::default()
        };
        let deny = DenyList::parse("# common\nPassword123!\n\n  letmein-please \n");
        assert!(check_policy(&listed, Some(&deny), "a@b.c", "password123!", "password").is_err());
        assert!(check_policy(&listed, Some(&deny), "a@b.c", "LETMEIN-PLEASE", "password").is_err());
        assert!(check_policy(&listed, Some(&deny), "a@b.c", "a rarer passphrase", "password").is_ok());
        let missing = check_policy(&listed, None, "a@b.c", "a rarer passphrase", "password").unwrap_err();
        assert_eq!(missing.code, tenantry_errors::ErrorCode::PasswordDenyListMissing);
    }
}
