//! `tenantry export` and `tenantry import`: a tenant's export document streamed from the
//! admin API into a file (or standard output) and from a file into the admin API, with
//! progress on standard error for large tenants.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use reqwest::Method;
use serde_json::Value;
use tokio::io::AsyncReadExt;

use crate::admin::{Api, ApiArgs, failure, seg};

#[derive(Args)]
pub struct ExportArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// The tenant to export.
    #[arg(long)]
    tenant: String,
    /// Where to write the document (default: standard output).
    #[arg(long, short = 'o', value_name = "FILE")]
    output_file: Option<PathBuf>,
    /// Include password hashes, TOTP secrets and settings secrets, sealed for the
    /// importing installation (never in plaintext).
    #[arg(long)]
    credentials: bool,
    /// The importing installation's transfer key (`ttk1.…`, from its `tenantry
    /// transfer-key`); this installation's own by default.
    #[arg(long, value_name = "KEY", requires = "credentials")]
    recipient: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Mode {
    /// Only into a tenant that does not exist yet.
    Create,
    /// Add to an existing tenant; nothing is removed.
    Merge,
    /// Make the existing tenant exactly the document.
    Replace,
}

#[derive(Args)]
pub struct ImportArgs {
    #[command(flatten)]
    api: ApiArgs,
    /// The export document ("-" reads standard input).
    file: PathBuf,
    /// The tenant to import into (new, or existing with --mode merge|replace).
    #[arg(long)]
    tenant: String,
    #[arg(long, value_enum, default_value = "create")]
    mode: Mode,
    /// Check the whole document and report what would change, changing nothing.
    #[arg(long)]
    dry_run: bool,
}

/// How often progress is shown.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// `GET /v1/admin/transfer-key`: the key another installation seals credentials for.
pub async fn transfer_key(args: ApiArgs) -> anyhow::Result<()> {
    let api = Api::new(args).await?;
    api.show(Method::GET, "/v1/admin/transfer-key", None, "").await
}

pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let output = args.output_file.clone();
    let api = Api::new(args.api).await?;
    let mut query = vec![];
    if args.credentials {
        query.push(("credentials", "true".to_owned()));
    }
    if let Some(recipient) = args.recipient {
        query.push(("recipient", recipient));
    }
    let path = format!("/v1/admin/tenants/{}/export", seg(&args.tenant));
    let mut response = api.send(api.request(Method::GET, &path).query(&query)).await?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        return Err(failure(
            status,
            &serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ));
    }
    let mut out: Box<dyn Write> = match &output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut progress = Progress::new();
    let mut lines = 0u64;
    while let Some(chunk) = response.chunk().await.context("the export was cut off")? {
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        out.write_all(&chunk)?;
        // The header is the first line and the trailer the last: the lines between are users.
        progress.show(|| format!("exported {} users", lines.saturating_sub(1)));
    }
    out.flush()?;
    let users = lines.saturating_sub(2);
    progress.done(&format!("exported {users} users of tenant {}", args.tenant));
    Ok(())
}

pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let api = Api::new(args.api).await?;
    let (body, total) = if args.file.as_os_str() == "-" {
        let mut all = Vec::new();
        tokio::io::stdin().read_to_end(&mut all).await?;
        let size = all.len() as u64;
        (reqwest::Body::from(all), size)
    } else {
        let file = tokio::fs::File::open(&args.file)
            .await
            .with_context(|| format!("opening {}", args.file.display()))?;
        let size = file.metadata().await?.len();
        (upload_with_progress(file, size), size)
    };
    let mode = match args.mode {
        Mode::Create => "create",
        Mode::Merge => "merge",
        Mode::Replace => "replace",
    };
    let mut query = vec![("mode", mode.to_owned())];
    if args.dry_run {
        query.push(("dry_run", "true".to_owned()));
    }
    let path = format!("/v1/admin/tenants/{}/import", seg(&args.tenant));
    let request = api
        .request(Method::POST, &path)
        .query(&query)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::CONTENT_LENGTH, total)
        .body(body);
    let response = api.send(request).await?;
    let status = response.status();
    let text = response.text().await?;
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if !status.is_success() {
        return Err(failure(status, &value));
    }
    api.print(Some(value))
}

/// The file as a request body that reports how much of it was sent.
fn upload_with_progress(file: tokio::fs::File, size: u64) -> reqwest::Body {
    let state = (file, 0u64, Progress::new());
    let stream = futures_util::stream::unfold(state, move |(mut file, mut sent, mut progress)| async move {
        let mut buffer = vec![0u8; 256 * 1024];
        match file.read(&mut buffer).await {
            Ok(0) => {
                progress.done(&format!("sent {}", mib(size)));
                None
            }
            Ok(n) => {
                buffer.truncate(n);
                sent += n as u64;
                let percent = (sent * 100).checked_div(size).unwrap_or(100);
                progress.show(|| format!("sent {} of {} ({percent}%)", mib(sent), mib(size)));
                Some((Ok::<_, std::io::Error>(buffer), (file, sent, progress)))
            }
            Err(e) => Some((Err(e), (file, sent, progress))),
        }
    });
    reqwest::Body::wrap_stream(stream)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Progress on standard error (the document may be on standard output): rewritten in
/// place on a terminal, a line every half second otherwise.
struct Progress {
    terminal: bool,
    last: Option<Instant>,
}

impl Progress {
    fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            last: None,
        }
    }

    fn show(&mut self, message: impl FnOnce() -> String) {
        if self.last.is_some_and(|at| at.elapsed() < PROGRESS_EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        if self.terminal {
            eprint!("\r{}\x1b[K", message());
        } else {
            eprintln!("{}", message());
        }
    }

    fn done(&mut self, message: &str) {
        if self.terminal {
            eprintln!("\r{message}\x1b[K");
        } else {
            eprintln!("{message}");
        }
    }
}
