-- Tenant data plane, SQLite. Timestamps are unix microseconds (INTEGER) on every
-- driver so that comparisons and ordering are identical everywhere; JSON is TEXT.

CREATE TABLE users (
    id BLOB PRIMARY KEY,
    email TEXT NOT NULL,
    email_normalized TEXT NOT NULL,
    email_verified INTEGER NOT NULL DEFAULT 0,
    username TEXT,
    username_normalized TEXT,
    given_name TEXT,
    family_name TEXT,
    name TEXT,
    picture TEXT,
    locale TEXT,
    phone_number TEXT,
    phone_number_verified INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    disabled_at INTEGER,
    disabled_reason TEXT,
    disabled_until INTEGER,
    metadata TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX users_email_normalized ON users (email_normalized);
CREATE UNIQUE INDEX users_username_normalized ON users (username_normalized);

CREATE TABLE password_credentials (
    user_id BLOB PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    phc TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE external_identities (
    id BLOB PRIMARY KEY,
    user_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider TEXT NOT NULL,
    subject TEXT NOT NULL,
    email TEXT,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX external_identities_provider_subject ON external_identities (provider, subject);
CREATE INDEX external_identities_user ON external_identities (user_id);

CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time INTEGER NOT NULL,
    amr TEXT NOT NULL,
    acr TEXT,
    ip TEXT,
    user_agent TEXT,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE authorization_codes (
    code_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    user_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id_hash TEXT,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    nonce TEXT,
    code_challenge TEXT,
    code_challenge_method TEXT,
    auth_time INTEGER NOT NULL,
    acr TEXT,
    amr TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE INDEX authorization_codes_expiry ON authorization_codes (expires_at);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id BLOB NOT NULL,
    parent_hash TEXT,
    client_id TEXT NOT NULL,
    user_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id_hash TEXT,
    origin_code_hash TEXT,
    scope TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    rotated_at INTEGER,
    revoked_at INTEGER,
    revoke_reason TEXT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id_hash);
CREATE INDEX refresh_tokens_origin_code ON refresh_tokens (origin_code_hash);

CREATE TABLE consents (
    user_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    scopes TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER,
    PRIMARY KEY (user_id, client_id)
);

CREATE TABLE totp_credentials (
    user_id BLOB PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret_sealed TEXT NOT NULL,
    confirmed_at INTEGER,
    last_used_step INTEGER,
    created_at INTEGER NOT NULL
);

CREATE TABLE recovery_codes (
    user_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at INTEGER,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, code_hash)
);

CREATE TABLE trusted_devices (
    token_hash TEXT PRIMARY KEY,
    user_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_agent TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX trusted_devices_user ON trusted_devices (user_id);

CREATE TABLE email_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    email TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE INDEX email_tokens_user ON email_tokens (user_id);

CREATE TABLE user_roles (
    user_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    assigned_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, role)
);

CREATE TABLE login_failures (
    user_id BLOB PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    failures INTEGER NOT NULL,
    window_started_at INTEGER NOT NULL,
    locked_until INTEGER
);

CREATE TABLE audit_events (
    id BLOB PRIMARY KEY,
    occurred_at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    user_id BLOB,
    actor TEXT,
    ip TEXT,
    details TEXT NOT NULL
);
CREATE INDEX audit_events_time ON audit_events (occurred_at);
CREATE INDEX audit_events_user ON audit_events (user_id);

-- Custom user fields declared in tenant settings, and the columns made for them.
CREATE TABLE custom_fields (
    name TEXT PRIMARY KEY,
    field_type TEXT NOT NULL,
    is_required INTEGER NOT NULL,
    is_unique INTEGER NOT NULL,
    is_indexed INTEGER NOT NULL,
    active INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
