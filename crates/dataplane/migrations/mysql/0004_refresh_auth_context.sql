-- The login a refresh-token family started from (its time and methods), so a rotation
-- can issue tokens without reading the session row.
ALTER TABLE refresh_tokens ADD COLUMN auth_time BIGINT;
ALTER TABLE refresh_tokens ADD COLUMN amr TEXT;
-- Families issued before this migration take the login time and methods of their session.
UPDATE refresh_tokens SET
    auth_time = (SELECT s.auth_time FROM sessions s WHERE s.id_hash = refresh_tokens.session_id_hash),
    amr = (SELECT s.amr FROM sessions s WHERE s.id_hash = refresh_tokens.session_id_hash)
WHERE session_id_hash IS NOT NULL;
