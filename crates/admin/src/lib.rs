//! Admin services: validation and sealing of admin input, and the one admin write path.
//!
//! [`api`] holds the admin API's request bodies, shared by the server and the CLI.
//! Admin validation and sealing live here, not in the HTTP crate: [`settings`] turns admin
//! settings input into sealed settings (and redacts, merge-patches and re-seals them), and
//! [`tenants`] builds and checks new and updated tenants (custom fields, database
//! ownership), and [`clients`] builds OAuth clients from admin input and makes their
//! secrets. The HTTP crate only reads the request, calls these, and answers.
//! [`users`] holds the admin operations on a tenant's users; [`audit`] reads the trail.
//! [`installation`] makes what an installation needs before its first request (system
//! keys, a first admin, the default tenant, the development demo), through the `Writer`
//! like every other control-plane write. [`signin`] signs admins in (password and TOTP
//! against the system issuer) and checks their access tokens; [`access`] turns any admin
//! credential into the principal the gate checks. [`transfer`] exports a tenant to a
//! document and imports one.
//!
//! Every change an administrator makes — a control-plane command through the `Writer`, or
//! a change in a tenant database — goes through [`AdminService::perform`] (commands through
//! its shorthand [`AdminService::command`]), which runs the change and, once it succeeded,
//! records who did what in the audit trail (the global database, when there is one; else
//! an append-only JSON-lines file under FS_ROOT, [`audit::EventFile`]). The
//! audit record is written here and nowhere else, so no admin write can forget it.
//!
//! This crate decides nothing about HTTP and never reads a request: the caller has already
//! authenticated the acting [`Actor`] and parsed the request, and checks the input with
//! the functions above before it calls [`AdminService::perform`].

pub mod access;
pub mod admins;
pub mod api;
pub mod audit;
pub mod clients;
pub mod installation;
pub mod settings;
pub mod signin;
pub mod tenants;
pub mod transfer;
pub mod users;

use std::future::Future;
use std::sync::Arc;

use serde_json::Value;
use tenantry_controlplane::{Command, Snapshot, Writer};
use tenantry_dataplane::GlobalDb;
use tenantry_errors::ApiError;
use uuid::Uuid;

/// Who acts: an authenticated administrator, or an API key (its id stands in the
/// audit trail's admin column, and the event says it was a key), and the request it acts
/// in (its `X-Request-Id`, recorded with the event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub admin_id: Uuid,
    pub api_key: bool,
    pub request_id: Option<String>,
}

/// What the audit trail says about one admin write.
#[derive(Debug, Clone, PartialEq)]
pub struct Audit {
    /// A stable verb, e.g. `create_tenant`, `rotate_keys`.
    pub action: &'static str,
    /// The tenant it concerns, if any.
    pub tenant: Option<String>,
    /// What it was done to (`user:<id>`, `client:<id>`, `admin:<id>`, `api_key:<id>`,
    /// `role:<name>`, `tenant:<slug>`, ...); the tenant itself when nothing narrower.
    pub target: Option<String>,
    /// What else an auditor needs (never a secret).
    pub details: Value,
}

impl Audit {
    pub fn new(action: &'static str, tenant: Option<&str>) -> Self {
        Self {
            action,
            tenant: tenant.map(str::to_owned),
            target: tenant.map(|slug| format!("tenant:{slug}")),
            details: Value::Object(Default::default()),
        }
    }

    /// Names what the action was done to, more narrowly than its tenant.
    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// Where the installation's audit events go: the global database, or, without one, an
/// append-only JSON-lines file (one event per line, for log shippers).
#[derive(Clone)]
pub enum AuditSink {
    Database(GlobalDb),
    File(Arc<audit::EventFile>),
}

/// Writes admin changes and records them.
#[derive(Clone)]
pub struct AdminService {
    writer: Arc<dyn Writer>,
    sink: AuditSink,
    /// One import at a time: each holds a transaction and a large upload, and two into
    /// one new slug would open one database slot between them.
    import_running: Arc<tokio::sync::Mutex<()>>,
}

impl AdminService {
    pub fn new(writer: Arc<dyn Writer>, sink: AuditSink) -> Self {
        Self {
            writer,
            sink,
            import_running: Arc::default(),
        }
    }

    /// The one entry: runs `change` for `actor` and, when it succeeded, records what
    /// `audit` says about its outcome. A failed change records nothing and changes nothing
    /// further.
    pub async fn perform<T, E, F>(
        &self,
        actor: Actor,
        change: F,
        audit: impl FnOnce(&T) -> Audit,
    ) -> Result<T, ApiError>
    where
        F: Future<Output = Result<T, E>>,
        E: Into<ApiError>,
    {
        let outcome = change.await.map_err(Into::into)?;
        self.record(actor, audit(&outcome)).await;
        Ok(outcome)
    }

    /// A control-plane command through the `Writer` (whose `apply` validates it), as one
    /// admin write.
    pub async fn command(&self, actor: Actor, command: Command, audit: Audit) -> Result<Arc<Snapshot>, ApiError> {
        self.perform(actor, self.writer.write(command), |_| audit).await
    }

    /// Records an event that changed nothing through this service: a request refused for
    /// lack of reach or access, an admin signing in or failing to.
    pub async fn event(&self, actor: Actor, audit: Audit) {
        self.record(actor, audit).await;
    }

    /// Never fails the request: the change is already stored.
    async fn record(&self, actor: Actor, audit: Audit) {
        let Audit {
            action,
            tenant,
            target,
            mut details,
        } = audit;
        if actor.api_key
            && let Value::Object(map) = &mut details
        {
            map.insert("credential".into(), Value::from("api_key"));
        }
        let recorded = match &self.sink {
            AuditSink::Database(global) => global
                .record_admin_event(
                    Some(actor.admin_id),
                    action,
                    tenant.as_deref(),
                    target.as_deref(),
                    actor.request_id.as_deref(),
                    details,
                )
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            AuditSink::File(file) => {
                let event = serde_json::json!({
                    "id": Uuid::now_v7(), "occurred_at": chrono::Utc::now(), "admin_id": actor.admin_id,
                    "action": action, "tenant": tenant, "target": target, "request_id": actor.request_id,
                    "details": details,
                });
                file.append(event).await.map_err(|e| e.to_string())
            }
        };
        if let Err(error) = recorded {
            tracing::warn!(action, %error, "admin audit event not recorded");
        }
    }
}

#[cfg(test)]
mod tests {
    use tenantry_controlplane::{ControlPlane, FsStore, StandaloneWriter};

    use super::*;

    async fn service() -> (tempfile::TempDir, AdminService, GlobalDb) {
        let dir = tempfile::tempdir().unwrap();
        let cp = Arc::new(ControlPlane::open(FsStore::new(dir.path().join("fs"))).unwrap());
        let url = format!("sqlite://{}", dir.path().join("global.db").display());
        let global = GlobalDb::connect(&url).await.unwrap();
        let service = AdminService::new(Arc::new(StandaloneWriter::new(cp)), AuditSink::Database(global.clone()));
        (dir, service, global)
    }

    #[tokio::test]
    async fn a_write_that_succeeded_is_recorded_and_one_that_failed_is_not() {
        let (_dir, admin, global) = service().await;
        let actor = Actor {
            admin_id: Uuid::new_v4(),
            api_key: false,
            request_id: Some("req-1".into()),
        };
        let refused = admin
            .command(
                actor.clone(),
                Command::DeleteTenant { slug: "ghost".into() },
                Audit::new("delete_tenant", Some("ghost")),
            )
            .await;
        assert!(refused.is_err());
        assert!(global.admin_events(10).await.unwrap().is_empty());

        let failed: Result<(), ApiError> = admin
            .perform(actor.clone(), async { Err(ApiError::internal()) }, |_| {
                Audit::new("boom", None)
            })
            .await;
        assert!(failed.is_err());
        assert!(global.admin_events(10).await.unwrap().is_empty());

        let done = admin
            .perform(actor.clone(), async { Ok::<_, ApiError>(7) }, |n| {
                Audit::new("migrate_tenant_db", Some("acme")).with_details(serde_json::json!({ "version": n }))
            })
            .await
            .unwrap();
        assert_eq!(done, 7);
        let events = global.admin_events(10).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].action, "migrate_tenant_db");
        assert_eq!(events[0].tenant.as_deref(), Some("acme"));
        assert_eq!(events[0].admin_id, Some(actor.admin_id));
        assert_eq!(events[0].details["version"], 7);
        assert_eq!(events[0].request_id.as_deref(), Some("req-1"));
    }
}
