//! The test process's one log subscriber, installed before the first server starts (a
//! server's `telemetry::init` then finds it and leaves it): what the servers log goes to
//! stderr as the binary would print it (`RUST_LOG`, default `info`), and, while a test
//! holds a [`capture`], everything at debug level and above is also kept for it to read.
//!
//! Every suite shares this process, so the capture holds the logs of whatever else runs
//! meanwhile too: read it for what must (or must never) be there, not for exact contents.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once, PoisonError};

use tracing_subscriber::filter::{DynFilterFn, EnvFilter, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// How many captures are held; the capture layer records only while this is above zero.
static ARMED: AtomicUsize = AtomicUsize::new(0);
static CAPTURED: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Installs the subscriber (once per process).
pub fn install() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let stderr = fmt::layer()
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")));
        let capture = fmt::layer().with_ansi(false).with_writer(|| Sink).with_filter(
            DynFilterFn::new(|meta, _| ARMED.load(Ordering::SeqCst) > 0 && *meta.level() <= LevelFilter::DEBUG)
                .with_max_level_hint(LevelFilter::DEBUG),
        );
        tracing_subscriber::registry()
            .with(stderr)
            .with(capture)
            .try_init()
            .expect("the test log subscriber is the process's first");
    });
}

/// Keeps every log line from now until the guard is dropped; [`captured`] reads them.
pub fn capture() -> Capture {
    install();
    ARMED.fetch_add(1, Ordering::SeqCst);
    Capture(())
}

/// While held, logs are captured.
pub struct Capture(());

impl Drop for Capture {
    fn drop(&mut self) {
        ARMED.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Everything captured so far (by any test's capture).
pub fn captured() -> String {
    String::from_utf8_lossy(&CAPTURED.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
}

struct Sink;

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
