//! Start-up errors name the setting and exit non-zero; `init` and the admin CLI work
//! against a real server.

use crate::common::*;
use std::process::Output;

/// Runs `cmd` with `input` on its standard input.
fn with_stdin(cmd: &mut std::process::Command, input: &str) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn serve_output(cwd: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tenantry(cwd);
    cmd.args(["serve", "--listen", "127.0.0.1:0"]).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn assert_config_error(output: &Output, setting: &str, problem: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains(&format!("configuration error in {setting}")),
        "stderr: {stderr}"
    );
    assert!(stderr.contains(problem), "stderr: {stderr}");
}

#[test]
fn bad_master_keys_stop_the_process_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let root_arg = root.to_str().unwrap();
    let out = serve_output(dir.path(), &["--fs-root", root_arg], &[]);
    assert_config_error(&out, "SECRETBOX_MASTER_KEY", "is not set");
    let out = serve_output(
        dir.path(),
        &["--fs-root", root_arg],
        &[("SECRETBOX_MASTER_KEY", "c2hvcnQ=")],
    );
    assert_config_error(&out, "SECRETBOX_MASTER_KEY", "exactly 32 bytes, got 5");
    let out = serve_output(
        dir.path(),
        &["--fs-root", root_arg],
        &[("SECRETBOX_MASTER_KEY", "not*base64*at*all")],
    );
    assert_config_error(&out, "SECRETBOX_MASTER_KEY", "not valid base64");
    let out = serve_output(
        dir.path(),
        &["--fs-root", root_arg],
        &[("SECRETBOX_MASTER_KEY", KEY_A), ("SECRETBOX_PREVIOUS_KEYS", "xyz")],
    );
    assert_config_error(&out, "SECRETBOX_PREVIOUS_KEYS[0]", "");
    assert!(
        !root.join("dev-master-key").exists(),
        "without --dev nothing is generated"
    );
}

#[test]
fn malformed_config_and_unwritable_fs_root_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tenantry.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\n[limits\n").unwrap();
    let out = serve_output(dir.path(), &["--dev"], &[]);
    assert_config_error(&out, "config file tenantry.toml", "malformed TOML");

    std::fs::write(&config, "listen = 8080\n").unwrap();
    let out = serve_output(dir.path(), &["--dev", "--config", config.to_str().unwrap()], &[]);
    assert_config_error(&out, "config file", "malformed TOML");

    std::fs::remove_file(&config).unwrap();
    let a_file = dir.path().join("plain-file");
    std::fs::write(&a_file, b"x").unwrap();
    let out = serve_output(
        dir.path(),
        &["--dev", "--fs-root", a_file.join("sub").to_str().unwrap()],
        &[],
    );
    assert_config_error(&out, "FS_ROOT", "cannot create");

    let out = serve_output(dir.path(), &["--dev"], &[("TENANTRY_PUBLIC_URL", "not a url")]);
    assert_config_error(&out, "TENANTRY_PUBLIC_URL", "is not a URL");
}

#[test]
fn config_file_and_env_choose_fs_root() {
    let dir = tempfile::tempdir().unwrap();
    let from_file = dir.path().join("from-file");
    std::fs::write(
        dir.path().join("tenantry.toml"),
        format!(
            "fs_root = {:?}\ndefault_tenant = \"main\"\n",
            from_file.to_str().unwrap()
        ),
    )
    .unwrap();
    let mut cmd = tenantry(dir.path());
    cmd.args(["init"]).env("SECRETBOX_MASTER_KEY", KEY_A);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(from_file.join("tenants/main/tenant.json").exists());

    let from_env = dir.path().join("from-env");
    let out = tenantry(dir.path())
        .args(["init"])
        .env("SECRETBOX_MASTER_KEY", KEY_A)
        .env("FS_ROOT", &from_env)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(from_env.join("tenants/main/tenant.json").exists());
}

#[tokio::test]
async fn init_then_serve_then_admin_cli() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let out = tenantry(dir.path())
        .args(["init", "--fs-root"])
        .arg(&root)
        .env("SECRETBOX_MASTER_KEY", KEY_A)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("first admin: admin@localhost"), "{stdout}");
    let one_time = stdout
        .lines()
        .find_map(|l| l.strip_prefix("one-time password (shown once; replaced at the first sign-in): "))
        .unwrap()
        .to_owned();
    assert!(root.join("tenants/local/tenant.json").exists());
    assert!(
        !root.join("dev-admin-token").exists(),
        "production has no bootstrap token"
    );
    let again = tenantry(dir.path())
        .args(["init", "--fs-root"])
        .arg(&root)
        .env("SECRETBOX_MASTER_KEY", KEY_A)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("an admin already exists"));

    // A second admin, offline, with a password of its own for one tenant.
    let out = with_stdin(
        tenantry(dir.path())
            .args([
                "admin",
                "create",
                "--email",
                "ops@example.com",
                "--tenant",
                "local",
                "--read-only",
                "--password-stdin",
                "--fs-root",
            ])
            .arg(&root),
        "an operator's own password\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("one-time"));
    let out = with_stdin(
        tenantry(dir.path())
            .args([
                "admin",
                "create",
                "--email",
                "x@example.com",
                "--password-stdin",
                "--fs-root",
            ])
            .arg(&root),
        "short\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("password: must be at least 12"));

    let server = Server::start(&root, &[], &[("SECRETBOX_MASTER_KEY", KEY_A)]);
    // The first sign-in: TOTP set up, then the one-time password replaced, with a code.
    let out = with_stdin(
        tenantry(dir.path()).args([
            "login",
            "--url",
            &server.base,
            "--email",
            "admin@localhost",
            "--enrol-totp",
        ]),
        &format!("{one_time}\n"),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let secret = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("TOTP secret: ").map(str::to_owned))
        .unwrap();
    let code = tenantry_testkit::totp::totp_at_step(&secret, tenantry_testkit::totp::current_step());
    let out = with_stdin(
        tenantry(dir.path()).args([
            "login",
            "--url",
            &server.base,
            "--email",
            "admin@localhost",
            "--new-password",
            "--code",
            &code,
        ]),
        &format!("{one_time}\nthe first admin's own password\n"),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let profile = dir.path().join(".config/tenantry/profile.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&profile).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the profile is the owner's alone");
    }
    // From here on the CLI uses the stored session: no --token, no --url.
    let cli = |args: &[&str]| {
        let mut cmd = tenantry(dir.path());
        cmd.args(args);
        cmd.output().unwrap()
    };
    let out = cli(&["apikey", "create", "--name", "ci", "--read-write"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let made: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(made["key"].as_str().unwrap().starts_with("tnk_"));
    // An access token about to expire is refreshed once, even by commands run side by side
    // (a refresh token spent twice would end the session).
    let mut stored: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&profile).unwrap()).unwrap();
    stored["access_expires_at"] = serde_json::json!(0);
    std::fs::write(&profile, stored.to_string()).unwrap();
    let side_by_side: Vec<_> = (0..3)
        .map(|_| {
            tenantry(dir.path())
                .args(["tenant", "list"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in side_by_side {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = cli(&["tenant", "list"]);
    assert!(
        out.status.success(),
        "the session lives on: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let settings = dir.path().join("settings.json");
    std::fs::write(
        &settings,
        r##"{"branding": {"name": "Acme", "primary_color": "#aa0000"}}"##,
    )
    .unwrap();
    let out = cli(&[
        "tenant",
        "create",
        "acme",
        "--display-name",
        "Acme Corp",
        "--settings",
        settings.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["display_name"], "Acme Corp");
    assert_eq!(created["settings"]["branding"]["primary_color"], "#aa0000");

    let out = cli(&["tenant", "create", "acme"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tenant_exists"));
    let out = cli(&["tenant", "create", "Bad Slug"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("validation_failed"));

    let out = cli(&["tenant", "list"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let slugs: Vec<_> = list["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["slug"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(slugs, ["acme", "local"]);

    let out = cli(&["tenant", "show", "acme"]);
    assert!(out.status.success());
    let out = cli(&["tenant", "delete", "acme"]);
    assert!(out.status.success());
    let out = cli(&["tenant", "show", "acme"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("tenant_not_found"));

    let out = cli(&["tenant", "migrate", "local"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["pending"], 0);
    assert!(schema["version"].as_i64().unwrap() >= 1);

    let out = cli(&["secrets", "reseal"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut wrong = tenantry(dir.path());
    let out = wrong
        .args(["tenant", "list", "--url", &server.base, "--token", "nope"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("unauthorized"));
}
