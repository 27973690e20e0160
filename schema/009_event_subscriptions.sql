-- Where each consumer that events are pushed to (NATS, each webhook endpoint)
-- stands in a tenant's feed, and which instance pushes to it now. One
-- instance at a time holds a subscription's lease, so events go out in feed
-- order; when it dies its lease runs out and another instance goes on from
-- `position` (at least once: what it had sent past `position` is sent again).
CREATE TABLE event_subscriptions (
  tenant_id   text        NOT NULL,
  -- `nats`, or `webhook:<endpoint id>`.
  id          text        NOT NULL,
  -- Every event at or below this position has been handed on.
  position    bigint      NOT NULL DEFAULT 0 CHECK (position >= 0),
  lease_owner text,
  lease_until timestamptz,
  PRIMARY KEY (tenant_id, id)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON event_subscriptions TO concord_app;
ALTER TABLE event_subscriptions ENABLE ROW LEVEL SECURITY;
ALTER TABLE event_subscriptions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_wall ON event_subscriptions
  USING (tenant_id = current_tenant()) WITH CHECK (tenant_id = current_tenant());

-- Finding the tenants whose feed is ahead of a subscription reads across
-- tenants, as the owner (like retention, schema/004): positions only.
CREATE POLICY event_dispatch_read ON event_subscriptions FOR SELECT TO CURRENT_USER USING (true);
