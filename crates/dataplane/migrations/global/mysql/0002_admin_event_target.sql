-- What an admin action was done to (`user:<id>`, `client:<id>`, `admin:<id>`, ...), so
-- the trail can be read by target. Events recorded before this migration have none.
ALTER TABLE admin_audit_events ADD COLUMN target VARCHAR(255);
CREATE INDEX admin_audit_events_target ON admin_audit_events (target);
