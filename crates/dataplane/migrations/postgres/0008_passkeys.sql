-- Passkeys (WebAuthn). A user's handle is the WebAuthn `user.id` their passkeys carry:
-- random, per tenant, never the user's UUID (path tenants share one RP ID, and an
-- authenticator replaces a credential of the same RP ID and user handle).
CREATE TABLE passkey_user_handles (
    user_id UUID PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    handle BYTEA NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX passkey_user_handles_handle ON passkey_user_handles (handle);

-- One registered credential. Looked up by the SHA-256 of its credential id, only in this
-- tenant's database.
CREATE TABLE passkey_credentials (
    id UUID PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id BYTEA NOT NULL,
    credential_id_hash VARCHAR(80) NOT NULL,
    public_key BYTEA NOT NULL,
    algorithm INTEGER NOT NULL,
    sign_count BIGINT NOT NULL,
    backup_eligible BOOLEAN NOT NULL,
    backup_state BOOLEAN NOT NULL,
    user_verified BOOLEAN NOT NULL,
    discoverable BOOLEAN,
    transports TEXT NOT NULL,
    aaguid BYTEA NOT NULL,
    attestation VARCHAR(32) NOT NULL,
    name VARCHAR(255) NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE UNIQUE INDEX passkey_credentials_credential ON passkey_credentials (credential_id_hash);
CREATE INDEX passkey_credentials_user ON passkey_credentials (user_id);

-- WebAuthn challenges: single use (spent before the response is verified), short lived.
-- `state` is what the ceremony's second step needs, as JSON.
CREATE TABLE webauthn_challenges (
    challenge_hash VARCHAR(80) PRIMARY KEY,
    purpose VARCHAR(32) NOT NULL,
    user_id UUID,
    binding_hash VARCHAR(80),
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX webauthn_challenges_expiry ON webauthn_challenges (expires_at);
