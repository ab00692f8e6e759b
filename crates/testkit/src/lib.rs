//! Tests only: the optional services some tests need (PostgreSQL, MariaDB/MySQL, Redis, an
//! SMTP server, a browser), each enabled by one `TENANTRY_TEST_*` variable, and the one
//! place that reads those variables.
//!
//! A test asks [`configured`] for its service. Set, it gets the value, and a service that
//! then turns out unusable must fail the test (the caller's job), never skip it. Unset, it
//! gets `None` and the skip is recorded, so that a suite can never pass silently having
//! run nothing:
//!
//! - in the test's own output (captured by libtest, shown on failure or `--nocapture`);
//! - at the exit of the test binary, one line per service on stderr, after libtest's
//!   `test result` line (libtest has no end-of-run hook, so this is a C `atexit` handler):
//!   `SKIPPED PostgreSQL suites in tenantry-server it (oidc_flow, tenant_db; 5 tests): set TENANTRY_TEST_POSTGRES_URL`;
//! - when [`SKIP_LOG_ENV`] names a file, one line per skipped test appended to it at once,
//!   so a run of many test binaries can be summed up at its end (`.ci/run` prints that
//!   file after `cargo test --workspace` and fails when it is not empty).
//!
//! It also holds helpers several test suites share: a TCP relay ([`relay`]) and an
//! independent TOTP ([`totp`]).
//!
//! This crate must never be a normal dependency: it is for `[dev-dependencies]` only.

pub mod relay;
pub mod totp;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::{Mutex, Once, PoisonError};

/// Names a file every skip is appended to (one line per skipped test), for a summary of
/// a whole run; unset, skips are only reported per test binary.
pub const SKIP_LOG_ENV: &str = "TENANTRY_TEST_SKIP_LOG";

/// An optional service, enabled by its variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Service {
    /// A PostgreSQL server: `TENANTRY_TEST_POSTGRES_URL`, an admin URL such as
    /// `postgres://postgres@127.0.0.1:5432/postgres`.
    Postgres,
    /// A MariaDB or MySQL server: `TENANTRY_TEST_MYSQL_URL`, e.g. `mysql://root@127.0.0.1:3306`.
    Mysql,
    /// A Redis server: `TENANTRY_TEST_REDIS_URL`, e.g. `redis://127.0.0.1:6379`.
    Redis,
    /// Python with `aiosmtpd`, for a real SMTP server: `TENANTRY_TEST_SMTP_PYTHON`.
    Smtp,
    /// Headless Chromium with `e2e/node_modules`: `TENANTRY_TEST_BROWSER=1`.
    Browser,
}

impl Service {
    pub const ALL: [Service; 5] = [
        Service::Postgres,
        Service::Mysql,
        Service::Redis,
        Service::Smtp,
        Service::Browser,
    ];

    /// The variable that enables the service.
    pub const fn var(self) -> &'static str {
        match self {
            Service::Postgres => "TENANTRY_TEST_POSTGRES_URL",
            Service::Mysql => "TENANTRY_TEST_MYSQL_URL",
            Service::Redis => "TENANTRY_TEST_REDIS_URL",
            Service::Smtp => "TENANTRY_TEST_SMTP_PYTHON",
            Service::Browser => "TENANTRY_TEST_BROWSER",
        }
    }

    /// How a person names it.
    pub const fn label(self) -> &'static str {
        match self {
            Service::Postgres => "PostgreSQL",
            Service::Mysql => "MariaDB/MySQL",
            Service::Redis => "Redis",
            Service::Smtp => "SMTP",
            Service::Browser => "browser",
        }
    }

    /// What to do to enable it.
    pub fn how_to_enable(self) -> String {
        match self {
            Service::Browser => format!("set {}=1", self.var()),
            _ => format!("set {}", self.var()),
        }
    }

    /// The variable's value when it enables the service (non-empty; for the browser, `1`),
    /// without recording anything: for a test that only chooses between variants.
    pub fn value(self) -> Option<String> {
        let value = std::env::var(self.var()).ok()?;
        let value = value.trim();
        let enabled = match self {
            Service::Browser => value == "1",
            _ => !value.is_empty(),
        };
        enabled.then(|| value.to_owned())
    }
}

/// The service's value, or `None` after recording that the calling test skips what needs it.
pub fn configured(service: Service) -> Option<String> {
    let value = service.value();
    if value.is_none() {
        skip(service, &format!("{} is not set", service.var()));
    }
    value
}

/// Records that the calling test skips (part of) its work for want of `service`; `why` is
/// said in the test's own output. See the crate documentation for where skips show.
pub fn skip(service: Service, why: &str) {
    let test = current_test();
    eprintln!(
        "skipping the {} part of {test} ({why}; {} to run it)",
        service.label(),
        service.how_to_enable()
    );
    SKIPPED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(service)
        .or_default()
        .insert(test.clone());
    AT_EXIT.call_once(|| {
        // SAFETY: registers a plain function that takes nothing; the C runtime calls it
        // once, on `exit` (libtest returns from `main` or calls `process::exit`).
        unsafe { atexit(report_at_exit) };
    });
    if let Some(path) = std::env::var_os(SKIP_LOG_ENV).filter(|p| !p.is_empty()) {
        let line = format!(
            "SKIPPED {} suites: {} ({}: {test})\n",
            service.label(),
            service.how_to_enable(),
            binary()
        );
        // One short append per line: concurrent test binaries do not interleave them.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(line.as_bytes()));
        if let Err(e) = written {
            panic!("{SKIP_LOG_ENV}={} cannot be written: {e}", path.to_string_lossy());
        }
    }
}

/// Skipped tests by service, in this process.
static SKIPPED: Mutex<BTreeMap<Service, BTreeSet<String>>> = Mutex::new(BTreeMap::new());
static AT_EXIT: Once = Once::new();

unsafe extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
}

extern "C" fn report_at_exit() {
    // Never wait at exit: a test still running (libtest does not stop timed-out tests)
    // might hold the lock.
    let Ok(skipped) = SKIPPED.try_lock() else { return };
    let lines = summary(&binary(), &skipped);
    let mut stderr = std::io::stderr().lock();
    for line in lines {
        let _ = writeln!(stderr, "{line}");
    }
}

/// One line per service: which suites (a test's first path segment, i.e. its module)
/// skipped it, how many tests, and how to enable it.
fn summary(binary: &str, skipped: &BTreeMap<Service, BTreeSet<String>>) -> Vec<String> {
    skipped
        .iter()
        .filter(|(_, tests)| !tests.is_empty())
        .map(|(service, tests)| {
            let suites: BTreeSet<&str> = tests.iter().map(|t| t.split("::").next().unwrap_or(t)).collect();
            let suites: Vec<&str> = suites.into_iter().collect();
            let count = match tests.len() {
                1 => "1 test".to_owned(),
                n => format!("{n} tests"),
            };
            format!(
                "SKIPPED {} suites in {binary} ({}; {count}): {}",
                service.label(),
                suites.join(", "),
                service.how_to_enable()
            )
        })
        .collect()
}

/// The running test: libtest runs each test on a thread named after it.
fn current_test() -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_owned(),
        _ => "a test".to_owned(),
    }
}

/// The test binary, as `<package> <target>`: `tenantry-server it`, or `tenantry-server
/// unit tests` for the library's own tests (cargo sets `CARGO_PKG_NAME` when it runs them).
fn binary() -> String {
    let exe = std::env::current_exe().ok();
    let stem = exe
        .as_deref()
        .and_then(|p| p.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Cargo names test binaries `<target>-<hash>`.
    let target = match stem.rsplit_once('-') {
        Some((target, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => target.to_owned(),
        _ => stem,
    };
    match std::env::var("CARGO_PKG_NAME") {
        Ok(package) if package.replace('-', "_") == target => format!("{package} unit tests"),
        Ok(package) => format!("{package} {target}"),
        Err(_) => target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_has_one_line_per_service_naming_suites_and_variable() {
        let mut skipped = BTreeMap::new();
        skipped.insert(
            Service::Postgres,
            BTreeSet::from([
                "oidc_flow::code_flow_on_postgres".to_owned(),
                "tenant_db::a".to_owned(),
                "tenant_db::b".to_owned(),
            ]),
        );
        skipped.insert(Service::Browser, BTreeSet::from(["browser::chromium".to_owned()]));
        assert_eq!(
            summary("tenantry-server it", &skipped),
            [
                "SKIPPED PostgreSQL suites in tenantry-server it (oidc_flow, tenant_db; 3 tests): set TENANTRY_TEST_POSTGRES_URL",
                "SKIPPED browser suites in tenantry-server it (browser; 1 test): set TENANTRY_TEST_BROWSER=1",
            ]
        );
    }

    /// Marks the child process of the test below.
    const CHILD_ENV: &str = "TENANTRY_TESTKIT_CHILD";

    /// The child process of the test below: records two skips. (Under `--include-ignored`
    /// elsewhere it does nothing, so a plain run never reports these made-up skips.)
    #[test]
    #[ignore = "run in a child process by a_skip_shows_at_exit_and_in_the_run_log"]
    fn records_skips() {
        if std::env::var_os(CHILD_ENV).is_none() {
            return;
        }
        assert_eq!(configured(Service::Smtp), None);
        skip(Service::Postgres, "the test says so");
    }

    #[test]
    fn a_skip_shows_at_exit_and_in_the_run_log() {
        let log = std::env::temp_dir().join(format!(
            "tenantry-testkit-{}-{:?}.log",
            std::process::id(),
            std::time::SystemTime::now()
        ));
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "tests::records_skips"])
            .env(SKIP_LOG_ENV, &log)
            .env(CHILD_ENV, "1")
            .env_remove(Service::Smtp.var())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("1 passed"), "{stdout}");
        // After libtest's own report, one line per service.
        let at_exit: Vec<&str> = stderr.lines().filter(|l| l.starts_with("SKIPPED ")).collect();
        assert_eq!(
            at_exit,
            [
                "SKIPPED PostgreSQL suites in tenantry-testkit unit tests (tests; 1 test): set TENANTRY_TEST_POSTGRES_URL",
                "SKIPPED SMTP suites in tenantry-testkit unit tests (tests; 1 test): set TENANTRY_TEST_SMTP_PYTHON",
            ],
            "{stderr}"
        );
        let logged = std::fs::read_to_string(&log).unwrap();
        let _ = std::fs::remove_file(&log);
        assert_eq!(
            logged.lines().collect::<Vec<_>>(),
            [
                "SKIPPED SMTP suites: set TENANTRY_TEST_SMTP_PYTHON (tenantry-testkit unit tests: tests::records_skips)",
                "SKIPPED PostgreSQL suites: set TENANTRY_TEST_POSTGRES_URL (tenantry-testkit unit tests: tests::records_skips)",
            ]
        );
    }

    /// Every test reads its service through this crate: a variable read anywhere else could
    /// skip without the skip being seen.
    #[test]
    fn no_other_code_reads_a_test_variable() {
        let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut pending = vec![workspace.join("crates")];
        let mut readers = Vec::new();
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.ends_with("crates/testkit") || path.ends_with("target") {
                    continue;
                }
                if path.is_dir() {
                    pending.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    if text.contains("\"TENANTRY_TEST_") {
                        readers.push(path.display().to_string());
                    }
                }
            }
        }
        assert!(
            readers.is_empty(),
            "use tenantry_testkit::configured instead of reading TENANTRY_TEST_* in {readers:?}"
        );
    }

    #[test]
    fn every_service_has_its_own_variable() {
        let vars: BTreeSet<&str> = Service::ALL.iter().map(|s| s.var()).collect();
        assert_eq!(vars.len(), Service::ALL.len());
        assert!(vars.iter().all(|v| v.starts_with("TENANTRY_TEST_")));
    }
}
