//! Starts the real `tenantry` binary on an ephemeral port with a temporary FS_ROOT.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_tenantry");

/// A base64 master key for tests (32 bytes of 0x11).
pub const KEY_A: &str = "ERERERERERERERERERERERERERERERERERERERERERE=";
/// Another one (32 bytes of 0x22).
pub const KEY_B: &str = "IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI=";

/// A `tenantry` command with a clean environment: no inherited Tenantry settings.
pub fn tenantry(cwd: &Path) -> Command {
    clean(Command::new(BIN), cwd)
}

fn clean(mut cmd: Command, cwd: &Path) -> Command {
    cmd.current_dir(cwd);
    for (name, _) in std::env::vars() {
        if name.starts_with("TENANTRY_") || name.starts_with("SECRETBOX_") || name == "FS_ROOT" {
            cmd.env_remove(name);
        }
    }
    cmd.env("RUST_LOG", "warn");
    // The `tenantry login` profile lives under the test's folder, never the user's.
    cmd.env("XDG_CONFIG_HOME", cwd.join(".config"));
    // The suites read answers as JSON; the table form has a test of its own.
    cmd.env("TENANTRY_OUTPUT", "json");
    cmd
}

pub struct Server {
    child: Child,
    pub base: String,
    pub fs_root: PathBuf,
    pub stdout_lines: Vec<String>,
    stderr_path: PathBuf,
}

impl Server {
    /// `serve --dev` on 127.0.0.1:0 with `env` added.
    pub fn start_dev(fs_root: &Path, env: &[(&str, &str)]) -> Server {
        Self::start(fs_root, &["--dev"], env)
    }

    pub fn start(fs_root: &Path, flags: &[&str], env: &[(&str, &str)]) -> Server {
        Self::launch(fs_root, "127.0.0.1:0", flags, env, None)
    }

    /// Like [`Server::start`], listening on `listen`.
    pub fn start_at(fs_root: &Path, listen: &str, flags: &[&str], env: &[(&str, &str)]) -> Server {
        Self::launch(fs_root, listen, flags, env, None)
    }

    /// `serve --dev` in a process whose descriptor limit (soft and hard) is `limit`.
    pub fn start_dev_with_fd_limit(fs_root: &Path, env: &[(&str, &str)], limit: u64) -> Server {
        Self::launch(fs_root, "127.0.0.1:0", &["--dev"], env, Some(limit))
    }

    fn launch(fs_root: &Path, listen: &str, flags: &[&str], env: &[(&str, &str)], fd_limit: Option<u64>) -> Server {
        std::fs::create_dir_all(fs_root).unwrap();
        let stderr_path = fs_root.with_extension(format!("stderr-{}", rand::random::<u32>()));
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let cwd = fs_root.parent().unwrap();
        let mut cmd = match fd_limit {
            None => tenantry(cwd),
            Some(limit) => {
                let mut cmd = clean(Command::new("sh"), cwd);
                cmd.arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(BIN);
                cmd
            }
        };
        cmd.args(["serve", "--listen", listen, "--fs-root"])
            .arg(fs_root)
            .args(flags);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::from(stderr)).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        let base = loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) => {
                    let found = line
                        .strip_prefix("Tenantry listening on ")
                        .map(|rest| rest.split(' ').next().unwrap().to_owned());
                    lines.push(line);
                    if let Some(base) = found {
                        break base;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "server did not start; stderr:\n{}",
                        std::fs::read_to_string(&stderr_path).unwrap_or_default()
                    );
                }
            }
        };
        // The banner's remaining lines arrive right after the first one.
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(line);
        }
        Server {
            child,
            base,
            fs_root: fs_root.to_owned(),
            stdout_lines: lines,
            stderr_path,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.fs_root.join("dev-admin-token")).unwrap()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM and wait for a graceful exit; returns the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill().unwrap();
        panic!("server did not stop on SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

/// An HTTP client bound to one server with its admin token.
pub struct Admin {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Admin {
    pub fn of(server: &Server) -> Admin {
        Admin {
            http: reqwest::Client::new(),
            base: server.base.clone(),
            token: server.admin_token(),
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        )
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}
