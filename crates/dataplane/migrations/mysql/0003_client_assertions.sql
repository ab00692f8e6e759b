-- jti values of spent private_key_jwt client assertions (RFC 7523 replay protection),
-- kept until the assertion expires.
CREATE TABLE client_assertion_jtis (
    client_id VARCHAR(128) NOT NULL,
    jti VARCHAR(255) NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX client_assertion_jtis_expiry ON client_assertion_jtis (expires_at);
