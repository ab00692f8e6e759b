-- Optional global database, SQLite: system-wide data only, never a tenant's users.

CREATE TABLE admin_audit_events (
    id BLOB PRIMARY KEY,
    occurred_at INTEGER NOT NULL,
    admin_id BLOB,
    action TEXT NOT NULL,
    tenant TEXT,
    request_id TEXT,
    details TEXT NOT NULL
);
CREATE INDEX admin_audit_events_time ON admin_audit_events (occurred_at);

CREATE TABLE admin_sessions (
    id_hash TEXT PRIMARY KEY,
    admin_id BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
