-- Passkeys (WebAuthn). A user's handle is the WebAuthn `user.id` their passkeys carry:
-- random, per tenant, never the user's UUID (path tenants share one RP ID, and an
-- authenticator replaces a credential of the same RP ID and user handle).
CREATE TABLE passkey_user_handles (
    user_id BINARY(16) PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    handle VARBINARY(64) NOT NULL,
    created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE UNIQUE INDEX passkey_user_handles_handle ON passkey_user_handles (handle);

-- One registered credential. Looked up by the SHA-256 of its credential id, only in this
-- tenant's database.
CREATE TABLE passkey_credentials (
    id BINARY(16) PRIMARY KEY,
    user_id BINARY(16) NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id VARBINARY(1024) NOT NULL,
    credential_id_hash VARCHAR(80) NOT NULL,
    public_key BLOB NOT NULL,
    algorithm INTEGER NOT NULL,
    sign_count BIGINT NOT NULL,
    backup_eligible BOOLEAN NOT NULL,
    backup_state BOOLEAN NOT NULL,
    user_verified BOOLEAN NOT NULL,
    discoverable BOOLEAN,
    transports TEXT NOT NULL,
    aaguid VARBINARY(16) NOT NULL,
    attestation VARCHAR(32) NOT NULL,
    name VARCHAR(255) NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE UNIQUE INDEX passkey_credentials_credential ON passkey_credentials (credential_id_hash);
CREATE INDEX passkey_credentials_user ON passkey_credentials (user_id);

-- WebAuthn challenges: single use (spent before the response is verified), short lived.
-- `state` is what the ceremony's second step needs, as JSON.
CREATE TABLE webauthn_challenges (
    challenge_hash VARCHAR(80) PRIMARY KEY,
    purpose VARCHAR(32) NOT NULL,
    user_id BINARY(16),
    binding_hash VARCHAR(80),
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX webauthn_challenges_expiry ON webauthn_challenges (expires_at);
