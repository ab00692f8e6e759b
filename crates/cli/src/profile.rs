//! `tenantry login` and the profile it stores: the server URL and an admin session (access
//! and refresh token) in a file only its owner can read (mode 0600). Admin commands use it
//! when no `--token` is given, refreshing the access token when it is about to expire.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tenantry_admin::api::AdminRefreshBody;
use tenantry_admin::signin::{AdminTokens, SignIn, TotpEnrolment};

/// A stored admin session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Profile {
    pub url: String,
    pub email: String,
    pub access_token: String,
    pub refresh_token: String,
    /// Unix seconds when the access token expires.
    pub access_expires_at: i64,
}

/// Where the profile lives: `--profile`, `TENANTRY_PROFILE`, else
/// `$XDG_CONFIG_HOME/tenantry/profile.json` or `~/.config/tenantry/profile.json`.
pub fn path(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| std::env::var_os("TENANTRY_PROFILE").map(PathBuf::from))
        .or_else(|| {
            let config = std::env::var_os("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
            Some(config.join("tenantry").join("profile.json"))
        })
}

pub fn load(path: &Path) -> anyhow::Result<Option<Profile>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            Ok(Some(serde_json::from_str(&text).with_context(|| {
                format!("{} is not a tenantry profile", path.display())
            })?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Writes the profile owner-only: a new file beside it, then renamed over the old one.
pub fn save(path: &Path, profile: &Profile) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let fresh = path.with_extension(format!("tmp{}", std::process::id()));
    let _ = std::fs::remove_file(&fresh);
    tenantry_crypto::files::write_private(&fresh, serde_json::to_string_pretty(profile)?.as_bytes())
        .with_context(|| format!("writing {}", fresh.display()))?;
    std::fs::rename(&fresh, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn profile_of(url: &str, email: &str, tokens: AdminTokens) -> Profile {
    Profile {
        url: url.to_owned(),
        email: email.to_owned(),
        access_expires_at: chrono::Utc::now().timestamp() + tokens.expires_in,
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
    }
}

/// `tenantry login`'s arguments.
#[derive(clap::Args)]
pub struct Login {
    /// Base URL of the server (env TENANTRY_URL, default http://127.0.0.1:8080).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    #[arg(long)]
    pub email: String,
    /// The TOTP code of your authenticator.
    #[arg(long)]
    pub code: Option<String>,
    /// The password is a one-time password: standard input's second line is the new one.
    #[arg(long)]
    pub new_password: bool,
    /// Set up TOTP instead of signing in: prints the secret for an authenticator app.
    #[arg(long)]
    pub enrol_totp: bool,
    /// Profile file (env TENANTRY_PROFILE; default ~/.config/tenantry/profile.json).
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
}

/// Signs in (password from standard input's first line) and stores the profile.
pub async fn login(args: Login) -> anyhow::Result<()> {
    let url = args
        .url
        .or_else(|| std::env::var("TENANTRY_URL").ok())
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let url = url.trim_end_matches('/').to_owned();
    let mut lines = std::io::stdin().lock().lines();
    let mut next_line = |what: &str| -> anyhow::Result<String> {
        match lines.next() {
            Some(line) => Ok(line?.trim_end_matches('\r').to_owned()),
            None => bail!("standard input has no {what}"),
        }
    };
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprintln!("reading the password from standard input (it is shown as typed; pipe it in to hide it)");
    }
    let password = next_line("password (first line)")?;
    let http = reqwest::Client::new();
    if args.enrol_totp {
        let body = serde_json::to_value(TotpEnrolment {
            email: args.email.clone(),
            password,
        })?;
        let enrolment = post(&http, &url, "/v1/admin/auth/totp", body).await?;
        println!("TOTP secret: {}", enrolment["secret"].as_str().unwrap_or_default());
        println!("otpauth URI: {}", enrolment["otpauth_uri"].as_str().unwrap_or_default());
        println!("add it to your authenticator, then run `tenantry login` with --code");
        return Ok(());
    }
    let new_password = match args.new_password {
        true => Some(next_line("new password (second line)")?),
        false => None,
    };
    let body = serde_json::to_value(SignIn {
        email: args.email.clone(),
        password,
        code: args.code.clone(),
        new_password,
    })?;
    let tokens: AdminTokens = serde_json::from_value(post(&http, &url, "/v1/admin/auth/login", body).await?)?;
    let path = path(args.profile).context("no profile path: pass --profile or set HOME")?;
    save(&path, &profile_of(&url, &args.email, tokens))?;
    println!("signed in to {url} as {}; profile {}", args.email, path.display());
    Ok(())
}

fn fresh_enough(profile: &Profile) -> bool {
    profile.access_expires_at - 30 > chrono::Utc::now().timestamp()
}

/// The profile's access token, refreshed (and the profile saved) when it expires within
/// 30 seconds. A refresh token works once (a second use ends the session), so commands
/// run side by side refresh one at a time: under an exclusive lock on `<profile>.lock`,
/// re-reading the profile another one may have just refreshed.
pub async fn fresh_access_token(path: &Path, profile: Profile) -> anyhow::Result<Profile> {
    if fresh_enough(&profile) {
        return Ok(profile);
    }
    let lock_path = path.with_extension("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    let lock = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock)).await??;
    let mut profile = load(path)?.unwrap_or(profile);
    if fresh_enough(&profile) {
        return Ok(profile);
    }
    let http = reqwest::Client::new();
    let body = serde_json::to_value(AdminRefreshBody {
        refresh_token: profile.refresh_token.clone(),
    })?;
    let refreshed = post(&http, &profile.url, "/v1/admin/auth/refresh", body)
        .await
        .context("the stored session has ended; run `tenantry login` again")?;
    let tokens: AdminTokens = serde_json::from_value(refreshed)?;
    profile = profile_of(&profile.url.clone(), &profile.email.clone(), tokens);
    save(path, &profile)?;
    drop(lock);
    Ok(profile)
}

async fn post(http: &reqwest::Client, url: &str, path: &str, body: Value) -> anyhow::Result<Value> {
    let response = http
        .post(format!("{url}{path}"))
        .json(&body)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let value: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!(
            "{status} {}: {}",
            value["code"].as_str().unwrap_or("error"),
            value["detail"].as_str().unwrap_or("")
        );
    }
    Ok(value)
}
