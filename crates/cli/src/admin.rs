//! Admin subcommands: thin clients of the admin API, so the CLI and HTTP callers share one
//! implementation and one set of checks.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tenantry_admin::access::NewApiKey;
use tenantry_admin::api::{CreateTenant, PatchTenant, RotateKeysRequest, SecretRotation, SetPassword};
use tenantry_controlplane::model::{AdminAccess, AdminReach};

use crate::table::Output;

#[derive(clap::Args, Clone)]
pub struct ApiArgs {
    /// Base URL of the server (env TENANTRY_URL, else TENANTRY_PUBLIC_URL).
    #[arg(long, global = true, value_name = "URL")]
    url: Option<String>,
    /// Admin token or API key (env TENANTRY_ADMIN_TOKEN; else the `tenantry login`
    /// profile; else FS_ROOT/dev-admin-token is read).
    #[arg(long, global = true, value_name = "TOKEN")]
    token: Option<String>,
    /// Profile file of `tenantry login` (env TENANTRY_PROFILE).
    #[arg(long, global = true, value_name = "FILE")]
    profile: Option<PathBuf>,
    /// How answers are shown: a table, or the API's JSON (env TENANTRY_OUTPUT).
    #[arg(long, global = true, value_enum, env = "TENANTRY_OUTPUT", default_value_t = Output::Table)]
    output: Output,
    /// FS_ROOT, to find dev-admin-token (env FS_ROOT, default ./data).
    #[arg(long, global = true, value_name = "DIR")]
    fs_root: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum TenantCommand {
    /// Create a tenant.
    Create {
        slug: String,
        #[arg(long)]
        display_name: Option<String>,
        /// JSON file with the tenant settings ("-" reads standard input).
        #[arg(long, value_name = "FILE")]
        settings: Option<PathBuf>,
    },
    /// List tenants (and degraded ones).
    List {
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        after: Option<String>,
    },
    /// Show one tenant (secrets redacted).
    Show { slug: String },
    /// Change a tenant's display name and/or merge-patch its settings.
    Update {
        slug: String,
        #[arg(long)]
        display_name: Option<String>,
        /// JSON merge patch (RFC 7396) over the settings ("-" reads standard input).
        #[arg(long, value_name = "FILE")]
        settings: Option<PathBuf>,
    },
    /// Delete a tenant and its control-plane files.
    Delete { slug: String },
    /// Open the tenant's database, apply pending migrations and report its schema version.
    Migrate { slug: String },
}

#[derive(Subcommand)]
pub enum KeysCommand {
    /// List a tenant's signing keys (kid, algorithm, state, dates; never private material).
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Make new active keys (all algorithms, or those named); the replaced keys stay
    /// published until their grace period ends.
    Rotate {
        #[arg(long)]
        tenant: String,
        /// Algorithm to rotate (RS256, ES256, EdDSA); repeat for several. Default: all.
        #[arg(long = "alg", value_name = "ALG")]
        algorithms: Vec<String>,
    },
    /// Withdraw a retiring key now (tokens it signed stop verifying).
    Retire {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        kid: String,
    },
}

#[derive(Subcommand)]
pub enum ProvidersCommand {
    /// Reach a tenant's upstream identity provider now (discovery and JWKS; GitHub: its
    /// API) and report its endpoints, or what is wrong.
    Test {
        #[arg(long)]
        tenant: String,
        /// The provider's id in the tenant's `social_providers`.
        #[arg(long)]
        provider: String,
    },
    /// The account an upstream identity (provider and subject) signs in to.
    Identity {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        provider: String,
        #[arg(long)]
        subject: String,
    },
    /// The upstream identities linked to a user.
    Identities {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        user: String,
    },
}

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Create a client from a JSON file ("-" reads standard input); a confidential
    /// client's secret is printed once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// List a tenant's clients.
    List {
        #[arg(long)]
        tenant: String,
    },
    /// Show one client (never its secret).
    Show {
        #[arg(long)]
        tenant: String,
        client_id: String,
    },
    /// Merge-patch a client (RFC 7396) from a JSON file.
    Update {
        #[arg(long)]
        tenant: String,
        client_id: String,
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Delete a client.
    Delete {
        #[arg(long)]
        tenant: String,
        client_id: String,
    },
    /// Replace a confidential client's secret (printed once); the old one stops working at
    /// once, or after `--overlap-secs`.
    RotateSecret {
        #[arg(long)]
        tenant: String,
        client_id: String,
        /// Keep accepting the old secret this long (at most 30 days).
        #[arg(long, value_name = "SECONDS", default_value_t = 0)]
        overlap_secs: u32,
    },
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user from a JSON file ("-" reads standard input): email, optional
    /// password, profile fields, custom fields.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// List users (50 per page; `--after` the last id of the previous page).
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        after: Option<String>,
    },
    Show {
        #[arg(long)]
        tenant: String,
        id: String,
    },
    /// Change the profile fields given in a JSON file.
    Update {
        #[arg(long)]
        tenant: String,
        id: String,
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Set a user's password, read from standard input (one line).
    SetPassword {
        #[arg(long)]
        tenant: String,
        id: String,
    },
    Delete {
        #[arg(long)]
        tenant: String,
        id: String,
    },
}

#[derive(Subcommand)]
pub enum ApiKeyCommand {
    /// Make a key; it is printed once. Without --tenant it reaches what the calling
    /// credential reaches; without --read-write it is read-only.
    Create {
        #[arg(long)]
        name: String,
        /// A tenant the key reaches; repeat for several.
        #[arg(long = "tenant", value_name = "SLUG")]
        tenants: Vec<String>,
        /// Reach the whole installation (the caller must too).
        #[arg(long, conflicts_with = "tenants")]
        global: bool,
        #[arg(long)]
        read_write: bool,
        /// Days until it expires; without it, it lives until revoked.
        #[arg(long, value_name = "DAYS")]
        expires_in_days: Option<u32>,
    },
    /// List the keys within the caller's reach (never their secrets).
    List,
    /// Revoke a key at once.
    Revoke { id: String },
}

#[derive(Subcommand)]
pub enum SecretsCommand {
    /// Re-seal every secret under the current master key (after a key rotation).
    Reseal,
}

pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
    output: Output,
}

impl Api {
    pub(crate) async fn new(args: ApiArgs) -> anyhow::Result<Self> {
        let output = args.output;
        let mut url = args.url.or_else(|| std::env::var("TENANTRY_URL").ok());
        let mut token = args.token.or_else(|| std::env::var("TENANTRY_ADMIN_TOKEN").ok());
        if token.is_none()
            && let Some(path) = crate::profile::path(args.profile)
            && let Some(profile) = crate::profile::load(&path)?
        {
            let profile = crate::profile::fresh_access_token(&path, profile).await?;
            url = url.or(Some(profile.url));
            token = Some(profile.access_token);
        }
        let token = match token {
            Some(t) => t,
            None => {
                let root = args
                    .fs_root
                    .or_else(|| std::env::var_os("FS_ROOT").map(PathBuf::from))
                    .unwrap_or_else(|| "./data".into());
                let path = root.join(tenantry_admin::installation::DEV_ADMIN_TOKEN_FILE);
                std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!(
                            "no admin token: pass --token, set TENANTRY_ADMIN_TOKEN, or run next to {}",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_owned()
            }
        };
        let base = url
            .or_else(|| std::env::var("TENANTRY_PUBLIC_URL").ok())
            .unwrap_or_else(|| "http://127.0.0.1:8080".into());
        Ok(Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            token,
            output,
        })
    }

    /// A request to `path` with the admin credential.
    pub(crate) fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    /// Sends `request`, failing when the server cannot be reached.
    pub(crate) async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<reqwest::Response> {
        request
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))
    }

    pub(crate) async fn call(&self, method: Method, path: &str, body: Option<Value>) -> anyhow::Result<Option<Value>> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = self.send(request).await?;
        let status = response.status();
        let text = response.text().await?;
        if status == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            return Err(failure(status, &value));
        }
        Ok(Some(value))
    }
}

/// A refused request as the error the command ends with: status, the problem's code and
/// title, its detail and every invalid field.
pub(crate) fn failure(status: StatusCode, value: &Value) -> anyhow::Error {
    let detail = value.get("detail").and_then(Value::as_str).unwrap_or("");
    let code = value.get("code").and_then(Value::as_str).unwrap_or("error");
    let title = value.get("title").and_then(Value::as_str).unwrap_or("");
    let mut message = format!("{status} {code}: {title}: {detail}");
    if let Some(errors) = value.get("errors").and_then(Value::as_array) {
        for e in errors {
            message.push_str(&format!(
                "\n  {}: {}",
                e["field"].as_str().unwrap_or(""),
                e["message"].as_str().unwrap_or("")
            ));
        }
    }
    anyhow::anyhow!(message)
}

pub(crate) fn read_json(path: &PathBuf) -> anyhow::Result<Value> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

impl Api {
    /// Prints an answer in the chosen form.
    pub(crate) fn print(&self, value: Option<Value>) -> anyhow::Result<()> {
        if let Some(value) = value {
            print!("{}", crate::table::render(&value, self.output));
            if self.output == Output::Json {
                println!();
            }
        }
        Ok(())
    }

    /// Calls and prints; a 204 prints `done` (tables) or nothing (JSON).
    pub(crate) async fn show(&self, method: Method, path: &str, body: Option<Value>, done: &str) -> anyhow::Result<()> {
        match self.call(method, path, body).await? {
            Some(value) => self.print(Some(value)),
            None => {
                if self.output == Output::Table {
                    println!("{done}");
                }
                Ok(())
            }
        }
    }
}

/// A request body of the API's own type.
pub(crate) fn body(value: impl serde::Serialize) -> anyhow::Result<Option<Value>> {
    Ok(Some(serde_json::to_value(value)?))
}

/// `--global` or `--tenant S...` as a reach; neither leaves the server's default.
pub(crate) fn reach_of(global: bool, tenants: Vec<String>) -> Option<AdminReach> {
    if global {
        Some(AdminReach::Global)
    } else if !tenants.is_empty() {
        Some(AdminReach::Tenants(tenants))
    } else {
        None
    }
}

/// A path segment, percent-encoded.
pub(crate) fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub async fn client(args: ApiArgs, command: ClientCommand) -> anyhow::Result<()> {
    let api = Api::new(args).await?;
    let base = |tenant: &str| format!("/v1/admin/tenants/{}/clients", seg(tenant));
    let result = match command {
        ClientCommand::Create { tenant, file } => {
            api.call(Method::POST, &base(&tenant), Some(read_json(&file)?)).await?
        }
        ClientCommand::List { tenant } => api.call(Method::GET, &base(&tenant), None).await?,
        ClientCommand::Show { tenant, client_id } => {
            api.call(Method::GET, &format!("{}/{}", base(&tenant), seg(&client_id)), None)
                .await?
        }
        ClientCommand::Update {
            tenant,
            client_id,
            file,
        } => {
            api.call(
                Method::PATCH,
                &format!("{}/{}", base(&tenant), seg(&client_id)),
                Some(read_json(&file)?),
            )
            .await?
        }
        ClientCommand::Delete { tenant, client_id } => {
            api.call(Method::DELETE, &format!("{}/{}", base(&tenant), seg(&client_id)), None)
                .await?
        }
        ClientCommand::RotateSecret {
            tenant,
            client_id,
            overlap_secs,
        } => {
            api.call(
                Method::POST,
                &format!("{}/{}/secret", base(&tenant), seg(&client_id)),
                body(SecretRotation { overlap_secs })?,
            )
            .await?
        }
    };
    api.print(result)
}

pub async fn user(args: ApiArgs, command: UserCommand) -> anyhow::Result<()> {
    let api = Api::new(args).await?;
    let base = |tenant: &str| format!("/v1/admin/tenants/{}/users", seg(tenant));
    let one = |tenant: &str, id: &str| format!("{}/{}", base(tenant), seg(id));
    let result = match command {
        UserCommand::Create { tenant, file } => api.call(Method::POST, &base(&tenant), Some(read_json(&file)?)).await?,
        UserCommand::List { tenant, after } => {
            let query = after.map(|a| format!("?after={}", seg(&a))).unwrap_or_default();
            api.call(Method::GET, &format!("{}{query}", base(&tenant)), None)
                .await?
        }
        UserCommand::Show { tenant, id } => api.call(Method::GET, &one(&tenant, &id), None).await?,
        UserCommand::Update { tenant, id, file } => {
            api.call(Method::PATCH, &one(&tenant, &id), Some(read_json(&file)?))
                .await?
        }
        UserCommand::SetPassword { tenant, id } => {
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']).to_owned();
            api.call(
                Method::PUT,
                &format!("{}/password", one(&tenant, &id)),
                body(SetPassword { password })?,
            )
            .await?
        }
        UserCommand::Delete { tenant, id } => api.call(Method::DELETE, &one(&tenant, &id), None).await?,
    };
    api.print(result)
}

pub async fn keys(args: ApiArgs, command: KeysCommand) -> anyhow::Result<()> {
    let api = Api::new(args).await?;
    let result = match command {
        KeysCommand::List { tenant } => {
            api.call(Method::GET, &format!("/v1/admin/tenants/{}/keys", seg(&tenant)), None)
                .await?
        }
        KeysCommand::Rotate { tenant, algorithms } => {
            let algorithms = algorithms
                .into_iter()
                .map(|alg| {
                    serde_json::from_value(Value::String(alg.clone()))
                        .map_err(|_| anyhow::anyhow!("unknown algorithm `{alg}`: RS256, ES256 or EdDSA"))
                })
                .collect::<anyhow::Result<_>>()?;
            api.call(
                Method::POST,
                &format!("/v1/admin/tenants/{}/keys/rotate", seg(&tenant)),
                body(RotateKeysRequest { algorithms })?,
            )
            .await?
        }
        KeysCommand::Retire { tenant, kid } => {
            api.call(
                Method::POST,
                &format!("/v1/admin/tenants/{}/keys/{}/retire", seg(&tenant), seg(&kid)),
                None,
            )
            .await?
        }
    };
    api.print(result)
}

pub async fn providers(args: ApiArgs, command: ProvidersCommand) -> anyhow::Result<()> {
    let api = Api::new(args).await?;
    let path = match command {
        ProvidersCommand::Test { tenant, provider } => {
            format!("/v1/admin/tenants/{}/providers/{}/test", seg(&tenant), seg(&provider))
        }
        ProvidersCommand::Identity {
            tenant,
            provider,
            subject,
        } => format!(
            "/v1/admin/tenants/{}/identities/{}/{}",
            seg(&tenant),
            seg(&provider),
            seg(&subject)
        ),
        ProvidersCommand::Identities { tenant, user } => {
            format!("/v1/admin/tenants/{}/users/{}/identities", seg(&tenant), seg(&user))
        }
    };
    let method = if path.ends_with("/test") {
        Method::POST
    } else {
        Method::GET
    };
    let result = api.call(method, &path, None).await?;
    api.print(result)
}

pub async fn tenant(args: ApiArgs, command: TenantCommand) -> anyhow::Result<()> {
    let api = Api::new(args).await?;
    let result = match command {
        TenantCommand::Create {
            slug,
            display_name,
            settings,
        } => {
            let tenant = CreateTenant {
                slug,
                display_name,
                settings: settings.map(|path| read_json(&path)).transpose()?,
            };
            api.call(Method::POST, "/v1/admin/tenants", body(tenant)?).await?
        }
        TenantCommand::List { limit, after } => {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            if let Some(limit) = limit {
                query.append_pair("limit", &limit.to_string());
            }
            if let Some(after) = after {
                query.append_pair("after", &after);
            }
            api.call(Method::GET, &format!("/v1/admin/tenants?{}", query.finish()), None)
                .await?
        }
        TenantCommand::Show { slug } => {
            api.call(Method::GET, &format!("/v1/admin/tenants/{}", seg(&slug)), None)
                .await?
        }
        TenantCommand::Update {
            slug,
            display_name,
            settings,
        } => {
            let patch = PatchTenant {
                display_name,
                settings: settings.map(|path| read_json(&path)).transpose()?,
            };
            api.call(
                Method::PATCH,
                &format!("/v1/admin/tenants/{}", seg(&slug)),
                body(patch)?,
            )
            .await?
        }
        TenantCommand::Migrate { slug } => {
            api.call(
                Method::POST,
                &format!("/v1/admin/tenants/{}/database/migrate", seg(&slug)),
                None,
            )
            .await?
        }
        TenantCommand::Delete { slug } => {
            api.call(Method::DELETE, &format!("/v1/admin/tenants/{}", seg(&slug)), None)
                .await?;
            println!("deleted tenant `{slug}`");
            None
        }
    };
    api.print(result)
}

pub async fn api_key(args: ApiArgs, command: ApiKeyCommand) -> anyhow::Result<()> {
    let api = Api::new(args).await?;
    let result = match command {
        ApiKeyCommand::Create {
            name,
            tenants,
            global,
            read_write,
            expires_in_days,
        } => {
            let key = NewApiKey {
                name,
                reach: reach_of(global, tenants),
                access: Some(if read_write {
                    AdminAccess::ReadWrite
                } else {
                    AdminAccess::ReadOnly
                }),
                expires_in_days,
            };
            api.call(Method::POST, "/v1/admin/api-keys", body(key)?).await?
        }
        ApiKeyCommand::List => api.call(Method::GET, "/v1/admin/api-keys", None).await?,
        ApiKeyCommand::Revoke { id } => {
            api.call(Method::DELETE, &format!("/v1/admin/api-keys/{}", seg(&id)), None)
                .await?;
            println!("revoked API key `{id}`");
            None
        }
    };
    api.print(result)
}

pub async fn secrets(args: ApiArgs, command: SecretsCommand) -> anyhow::Result<()> {
    let api = Api::new(args).await?;
    match command {
        SecretsCommand::Reseal => {
            let report = api
                .call(Method::POST, "/v1/admin/secrets/reseal", None)
                .await?
                .unwrap_or(Value::Null);
            let failed = report.get("failed").and_then(Value::as_array).map_or(0, Vec::len);
            api.print(Some(report))?;
            if failed > 0 {
                bail!("{failed} secret(s) could not be re-sealed");
            }
            Ok(())
        }
    }
}
