-- The login a refresh-token family started from (its time and methods), so a rotation
-- can issue tokens without reading the session row.
ALTER TABLE refresh_tokens ADD COLUMN auth_time BIGINT;
ALTER TABLE refresh_tokens ADD COLUMN amr TEXT;
