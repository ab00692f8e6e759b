-- Optional global database, PostgreSQL: system-wide data only, never a tenant's users.

CREATE TABLE admin_audit_events (
    id UUID PRIMARY KEY,
    occurred_at BIGINT NOT NULL,
    admin_id UUID,
    action VARCHAR(64) NOT NULL,
    tenant VARCHAR(63),
    request_id VARCHAR(128),
    details TEXT NOT NULL
);
CREATE INDEX admin_audit_events_time ON admin_audit_events (occurred_at);

CREATE TABLE admin_sessions (
    id_hash VARCHAR(80) PRIMARY KEY,
    admin_id UUID NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
