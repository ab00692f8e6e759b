-- The tenant this database belongs to: stamped with the tenant's id when it is first
-- opened, checked on every open, so two tenants can never share one database and a
-- re-created tenant (new id) does not silently inherit an old one's data.
CREATE TABLE tenant_owner (
    singleton SMALLINT PRIMARY KEY CHECK (singleton = 1),
    tenant_id VARCHAR(36) NOT NULL,
    stamped_at BIGINT NOT NULL
);
