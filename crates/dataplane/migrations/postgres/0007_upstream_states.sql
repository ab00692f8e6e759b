-- `state` values of upstream sign-ins (federation) that came back, kept until they
-- expire, so each one completes at most one sign-in.
CREATE TABLE spent_upstream_states (
    state_hash VARCHAR(80) PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX spent_upstream_states_expiry ON spent_upstream_states (expires_at);
