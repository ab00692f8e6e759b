-- Passkeys (WebAuthn). A user's handle is the WebAuthn `user.id` their passkeys carry:
-- random, per tenant, never the user's UUID (path tenants share one RP ID, and an
-- authenticator replaces a credential of the same RP ID and user handle).
CREATE TABLE passkey_user_handles (
    user_id BLOB PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    handle BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX passkey_user_handles_handle ON passkey_user_handles (handle);

-- One registered credential. Looked up by the SHA-256 of its credential id, only in this
-- tenant's database.
CREATE TABLE passkey_credentials (
    id BLOB PRIMARY KEY,
    user_id BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id BLOB NOT NULL,
    credential_id_hash TEXT NOT NULL,
    public_key BLOB NOT NULL,
    algorithm INTEGER NOT NULL,
    sign_count INTEGER NOT NULL,
    backup_eligible INTEGER NOT NULL,
    backup_state INTEGER NOT NULL,
    user_verified INTEGER NOT NULL,
    discoverable INTEGER,
    transports TEXT NOT NULL,
    aaguid BLOB NOT NULL,
    attestation TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER
);
CREATE UNIQUE INDEX passkey_credentials_credential ON passkey_credentials (credential_id_hash);
CREATE INDEX passkey_credentials_user ON passkey_credentials (user_id);

-- WebAuthn challenges: single use (spent before the response is verified), short lived.
-- `state` is what the ceremony's second step needs, as JSON.
CREATE TABLE webauthn_challenges (
    challenge_hash TEXT PRIMARY KEY,
    purpose TEXT NOT NULL,
    user_id BLOB,
    binding_hash TEXT,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE INDEX webauthn_challenges_expiry ON webauthn_challenges (expires_at);
