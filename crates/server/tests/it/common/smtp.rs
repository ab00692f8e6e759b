//! A real SMTP server for tests: Python `aiosmtpd` in a separate process, writing every
//! message it accepts to a folder as JSON (decoded by Python's `email` package: subject,
//! text and HTML parts) next to the raw RFC 5322 text.
//!
//! `TENANTRY_TEST_SMTP_PYTHON` names a Python with `aiosmtpd` installed (`.ci/run` makes a
//! venv and sets it). Unset: [`SmtpServer::start`] records a skip (`tenantry_testkit`) and
//! returns `None`, and the test returns. Set: a server that cannot start fails the test.
//!
//! ```ignore
//! let Some(smtp) = SmtpServer::start() else { return };
//! smtp.configure_tenant(&server, "local").await;           // settings.smtp → this server
//! // ... trigger a mail ...
//! let mail = smtp.wait_for_message(Duration::from_secs(10)).await;
//! assert_eq!(mail.rcpt_to, ["ada@example.com"]);
//! let link = mail.links()[0].clone();
//! ```

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use super::TestServer;

/// Names the Python interpreter that has `aiosmtpd`.
pub const PYTHON_ENV: &str = tenantry_testkit::Service::Smtp.var();

/// The sender address [`SmtpServer::smtp_settings`] configures.
pub const FROM_ADDRESS: &str = "no-reply@tenantry.test";

const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// How the test server behaves.
#[derive(Debug, Clone, Default)]
pub struct SmtpOptions {
    /// Require `AUTH` with exactly these credentials (offered without TLS).
    pub auth: Option<(String, String)>,
    /// Recipients in these domains are refused with `550` at `RCPT TO`.
    pub reject_domains: Vec<String>,
}

/// One message the server accepted.
#[derive(Debug, Clone, Deserialize)]
pub struct ReceivedMail {
    /// Envelope sender (`MAIL FROM`).
    pub mail_from: String,
    /// Envelope recipients (`RCPT TO`).
    pub rcpt_to: Vec<String>,
    /// The login the client authenticated as, if it did.
    pub auth_login: Option<String>,
    /// Decoded `From`, `To` and `Subject` headers.
    pub from: String,
    pub to: String,
    pub subject: String,
    /// The top-level content type, e.g. `multipart/alternative`.
    pub content_type: String,
    /// The decoded `text/plain` and `text/html` parts (line ends as `\n`).
    pub text: Option<String>,
    pub html: Option<String>,
    /// The message as received (RFC 5322, transfer encodings not decoded).
    pub raw: String,
}

impl ReceivedMail {
    /// The `http(s)://` links in the text part, in order.
    pub fn links(&self) -> Vec<String> {
        let text = self.text.as_deref().unwrap_or("");
        text.split_whitespace()
            .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
            .map(|w| w.trim_end_matches(['.', ',', ')', '>']).to_owned())
            .collect()
    }
}

/// A running `aiosmtpd` on 127.0.0.1; killed when dropped.
pub struct SmtpServer {
    child: Child,
    port: u16,
    options: SmtpOptions,
    dir: tempfile::TempDir,
    /// How many messages `wait_for_message` has handed out.
    seen: AtomicUsize,
}

impl SmtpServer {
    /// Starts a server without authentication, or returns `None` (a recorded skip) when
    /// `TENANTRY_TEST_SMTP_PYTHON` is unset. Panics when it is set and the server does not start.
    pub fn start() -> Option<SmtpServer> {
        Self::start_with(SmtpOptions::default())
    }

    /// [`start`](Self::start) with options.
    pub fn start_with(options: SmtpOptions) -> Option<SmtpServer> {
        let python = tenantry_testkit::configured(tenantry_testkit::Service::Smtp)?;
        Some(Self::spawn(&python, options))
    }

    fn spawn(python: &str, options: SmtpOptions) -> SmtpServer {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("smtp_sink.py");
        std::fs::write(&script, SCRIPT).unwrap();
        let mail_dir = dir.path().join("mail");
        std::fs::create_dir(&mail_dir).unwrap();
        let log = dir.path().join("server.log");
        let mut command = Command::new(python);
        command
            .arg(&script)
            .arg("--dir")
            .arg(&mail_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some((user, password)) = &options.auth {
            command.args(["--user", user, "--password", password]);
        }
        for domain in &options.reject_domains {
            command.args(["--reject-domain", domain]);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{PYTHON_ENV}={python} cannot be run: {e}"));

        // The script binds port 0 and prints `READY <port>` once it listens.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(STARTUP_TIMEOUT).unwrap_or_default();
        let Some(port) = line.trim().strip_prefix("READY ").and_then(|p| p.parse::<u16>().ok()) else {
            let _ = child.kill();
            let _ = child.wait();
            let mut stderr = String::new();
            let _ = std::fs::File::open(&log).and_then(|mut f| f.read_to_string(&mut stderr));
            panic!("aiosmtpd did not start with {PYTHON_ENV}={python} (is aiosmtpd installed?): {line:?}\n{stderr}");
        };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "aiosmtpd on port {port} does not accept connections"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        SmtpServer {
            child,
            port,
            options,
            dir,
            seen: AtomicUsize::new(0),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// Every message received so far, in order of arrival.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        read_messages(&self.mail_dir())
    }

    /// The next message not yet returned by this method, waiting up to `timeout`
    /// (panics after that).
    pub async fn wait_for_message(&self, timeout: Duration) -> ReceivedMail {
        let index = self.seen.load(Ordering::SeqCst);
        let mail = self
            .wait_until(timeout, |messages| messages.get(index).cloned())
            .await
            .unwrap_or_else(|| panic!("no message #{} arrived within {timeout:?}", index + 1));
        self.seen.store(index + 1, Ordering::SeqCst);
        mail
    }

    /// The latest message for envelope recipient `to`, waiting up to `timeout`.
    pub async fn wait_for_message_to(&self, to: &str, timeout: Duration) -> ReceivedMail {
        self.wait_until(timeout, |messages| {
            messages
                .iter()
                .rev()
                .find(|m| m.rcpt_to.iter().any(|r| r.eq_ignore_ascii_case(to)))
                .cloned()
        })
        .await
        .unwrap_or_else(|| panic!("no message to {to} arrived within {timeout:?}"))
    }

    async fn wait_until<T>(&self, timeout: Duration, mut found: impl FnMut(&[ReceivedMail]) -> Option<T>) -> Option<T> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(value) = found(&self.messages()) {
                return Some(value);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `settings.smtp` pointing at this server: plain SMTP (`tls: none`), the options'
    /// credentials when it requires them (else `null`s), sender [`FROM_ADDRESS`]. Usable
    /// as a whole value and as a merge patch.
    pub fn smtp_settings(&self) -> Value {
        let mut smtp = json!({
            "host": "127.0.0.1",
            "port": self.port,
            "tls": "none",
            "from_address": FROM_ADDRESS,
        });
        // Explicit nulls, so that as a merge patch this also removes older credentials.
        let (user, password) = self.options.auth.clone().unzip();
        smtp["username"] = json!(user);
        smtp["password"] = json!(password);
        smtp
    }

    /// Points tenant `slug`'s `settings.smtp` at this server through the admin API
    /// (`PATCH /v1/admin/tenants/{slug}`); returns the tenant as the API shows it.
    pub async fn configure_tenant(&self, server: &TestServer, slug: &str) -> Value {
        let (status, body) = server
            .admin(
                reqwest::Method::PATCH,
                &format!("/v1/admin/tenants/{slug}"),
                Some(json!({"settings": {"smtp": self.smtp_settings()}})),
            )
            .await;
        assert_eq!(status, 200, "configuring SMTP for {slug}: {body}");
        body
    }

    /// Stops the server now (its port then refuses connections).
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read_messages(dir: &Path) -> Vec<ReceivedMail> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
        .collect();
    names.sort();
    names
        .iter()
        .map(|n| {
            let bytes = std::fs::read(dir.join(n)).unwrap();
            serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("message file {n}: {e}"))
        })
        .collect()
}

/// The server: aiosmtpd's `SMTP` protocol on an asyncio server bound to 127.0.0.1:0. Each
/// accepted message becomes `<n>.json` (written to a dot-file, then renamed).
const SCRIPT: &str = r#"
import argparse, asyncio, email, email.policy, json, os, sys
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

parser = argparse.ArgumentParser()
parser.add_argument("--dir", required=True)
parser.add_argument("--user")
parser.add_argument("--password")
parser.add_argument("--reject-domain", action="append", default=[])
args = parser.parse_args()


class Handler:
    def __init__(self):
        self.count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.rsplit("@", 1)[-1].lower() in args.reject_domain:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        msg = email.message_from_bytes(raw, policy=email.policy.default)

        def part(kind):
            body = msg.get_body(preferencelist=(kind,))
            return None if body is None else body.get_content().replace("\r\n", "\n")

        login = getattr(session, "auth_data", None)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_to": list(envelope.rcpt_tos),
            "auth_login": login.decode() if isinstance(login, bytes) else login,
            "from": str(msg.get("from", "")),
            "to": str(msg.get("to", "")),
            "subject": str(msg.get("subject", "")),
            "content_type": msg.get_content_type(),
            "text": part("plain"),
            "html": part("html"),
            "raw": raw.decode("utf-8", "replace"),
        }
        self.count += 1
        name = "%08d.json" % self.count
        tmp = os.path.join(args.dir, "." + name)
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(args.dir, name))
        return "250 Message accepted for delivery"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == args.user.encode()
        and auth_data.password == args.password.encode()
    )
    return AuthResult(success=ok, handled=False, auth_data=args.user if ok else None)


async def main():
    handler = Handler()
    kwargs = {"hostname": "smtp.tenantry.test"}
    if args.user is not None:
        kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=False)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, **kwargs), host="127.0.0.1", port=0)
    print("READY %d" % server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


asyncio.run(main())
"#;
