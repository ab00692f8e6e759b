-- Deny-list of revoked JWT access tokens (RFC 7009): kept until the token expires.
CREATE TABLE revoked_access_tokens (
    jti VARCHAR(128) PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_access_tokens_expiry ON revoked_access_tokens (expires_at);
