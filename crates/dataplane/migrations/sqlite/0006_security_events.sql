-- The tenant's audit trail of security events (sign-ins, lockouts, second factors,
-- password and email changes, refresh-token replays): what an event was done to, from
-- which browser, in which request, and whether it succeeded. Rows written before this
-- migration have none of these.
ALTER TABLE audit_events ADD COLUMN target TEXT;
ALTER TABLE audit_events ADD COLUMN user_agent TEXT;
ALTER TABLE audit_events ADD COLUMN request_id TEXT;
ALTER TABLE audit_events ADD COLUMN outcome TEXT;
