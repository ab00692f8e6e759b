-- Optional global database, MySQL/MariaDB: system-wide data only, never a tenant's users.

CREATE TABLE admin_audit_events (
    id BINARY(16) PRIMARY KEY,
    occurred_at BIGINT NOT NULL,
    admin_id BINARY(16),
    action VARCHAR(64) NOT NULL,
    tenant VARCHAR(63),
    request_id VARCHAR(128),
    details TEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX admin_audit_events_time ON admin_audit_events (occurred_at);

CREATE TABLE admin_sessions (
    id_hash VARCHAR(80) PRIMARY KEY,
    admin_id BINARY(16) NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
