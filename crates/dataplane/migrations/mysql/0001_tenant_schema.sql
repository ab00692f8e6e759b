-- Tenant data plane, MySQL/MariaDB (InnoDB, utf8mb4). Timestamps are unix microseconds (BIGINT) on every
-- driver so that comparisons and ordering are identical everywhere; JSON is TEXT.

CREATE TABLE users (
    id BINARY(16) PRIMARY KEY,
    email VARCHAR(320) NOT NULL,
    email_normalized VARCHAR(320) NOT NULL,
    email_verified BOOLEAN NOT NULL DEFAULT FALSE,
    username VARCHAR(255),
    username_normalized VARCHAR(255),
    given_name VARCHAR(255),
    family_name VARCHAR(255),
    name VARCHAR(255),
    picture TEXT,
    locale VARCHAR(35),
    phone_number VARCHAR(64),
    phone_number_verified BOOLEAN NOT NULL DEFAULT FALSE,
    status VARCHAR(16) NOT NULL,
    disabled_at BIGINT,
    disabled_reason TEXT,
    disabled_until BIGINT,
    metadata TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE UNIQUE INDEX users_email_normalized ON users (email_normalized);
CREATE UNIQUE INDEX users_username_normalized ON users (username_normalized);

CREATE TABLE password_credentials (
    user_id BINARY(16) PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    phc TEXT NOT NULL,
    updated_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE external_identities (
    id BINARY(16) PRIMARY KEY,
    user_id BINARY(16) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider VARCHAR(64) NOT NULL,
    subject VARCHAR(255) NOT NULL,
    email VARCHAR(320),
    created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE UNIQUE INDEX external_identities_provider_subject ON external_identities (provider, subject);
CREATE INDEX external_identities_user ON external_identities (user_id);

CREATE TABLE sessions (
    id_hash VARCHAR(80) PRIMARY KEY,
    user_id BINARY(16) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time BIGINT NOT NULL,
    amr TEXT NOT NULL,
    acr VARCHAR(128),
    ip VARCHAR(64),
    user_agent VARCHAR(512),
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE authorization_codes (
    code_hash VARCHAR(80) PRIMARY KEY,
    client_id VARCHAR(128) NOT NULL,
    user_id BINARY(16) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id_hash VARCHAR(80),
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    nonce TEXT,
    code_challenge VARCHAR(128),
    code_challenge_method VARCHAR(16),
    auth_time BIGINT NOT NULL,
    acr VARCHAR(128),
    amr TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX authorization_codes_expiry ON authorization_codes (expires_at);

CREATE TABLE refresh_tokens (
    token_hash VARCHAR(80) PRIMARY KEY,
    family_id BINARY(16) NOT NULL,
    parent_hash VARCHAR(80),
    client_id VARCHAR(128) NOT NULL,
    user_id BINARY(16) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id_hash VARCHAR(80),
    origin_code_hash VARCHAR(80),
    scope TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    rotated_at BIGINT,
    revoked_at BIGINT,
    revoke_reason VARCHAR(32)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id_hash);
CREATE INDEX refresh_tokens_origin_code ON refresh_tokens (origin_code_hash);

CREATE TABLE consents (
    user_id BINARY(16) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id VARCHAR(128) NOT NULL,
    scopes TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    PRIMARY KEY (user_id, client_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE totp_credentials (
    user_id BINARY(16) PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret_sealed TEXT NOT NULL,
    confirmed_at BIGINT,
    last_used_step BIGINT,
    created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE recovery_codes (
    user_id BINARY(16) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash VARCHAR(80) NOT NULL,
    used_at BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, code_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE trusted_devices (
    token_hash VARCHAR(80) PRIMARY KEY,
    user_id BINARY(16) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    user_agent VARCHAR(512),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX trusted_devices_user ON trusted_devices (user_id);

CREATE TABLE email_tokens (
    token_hash VARCHAR(80) PRIMARY KEY,
    user_id BINARY(16) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose VARCHAR(32) NOT NULL,
    email VARCHAR(320) NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX email_tokens_user ON email_tokens (user_id);

CREATE TABLE user_roles (
    user_id BINARY(16) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role VARCHAR(128) NOT NULL,
    assigned_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, role)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE login_failures (
    user_id BINARY(16) PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    failures INTEGER NOT NULL,
    window_started_at BIGINT NOT NULL,
    locked_until BIGINT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE audit_events (
    id BINARY(16) PRIMARY KEY,
    occurred_at BIGINT NOT NULL,
    kind VARCHAR(64) NOT NULL,
    user_id BINARY(16),
    actor VARCHAR(255),
    ip VARCHAR(64),
    details TEXT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX audit_events_time ON audit_events (occurred_at);
CREATE INDEX audit_events_user ON audit_events (user_id);

-- Custom user fields declared in tenant settings, and the columns made for them.
CREATE TABLE custom_fields (
    name VARCHAR(63) PRIMARY KEY,
    field_type VARCHAR(16) NOT NULL,
    is_required BOOLEAN NOT NULL,
    is_unique BOOLEAN NOT NULL,
    is_indexed BOOLEAN NOT NULL,
    active BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
