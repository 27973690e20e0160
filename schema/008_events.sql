-- Change events (the outbox): written by the commit pipeline in the
-- transaction that logs the updates they describe (src/events/writer.ts), so
-- an event exists if and only if its change is committed.
--
-- `position` orders a tenant's feed. It is taken from the tenant's row in
-- event_feeds, which the inserting transaction keeps locked until it commits:
-- positions are therefore handed out in commit order, and a reader paging by
-- position never skips an event that commits later with a lower one (a
-- sequence would hand them out at insert time, not at commit).
CREATE TABLE event_feeds (
  tenant_id     text   NOT NULL PRIMARY KEY,
  -- The last position handed out.
  last_position bigint NOT NULL CHECK (last_position >= 0),
  -- Every event at or below this position has been pruned (EVENTS_RETENTION_DAYS):
  -- a cursor below it has missed events and is refused (410 cursor-expired).
  pruned_through bigint NOT NULL DEFAULT 0
);

CREATE TABLE change_events (
  tenant_id   text        NOT NULL,
  position    bigint      NOT NULL CHECK (position > 0),
  id          uuid        NOT NULL,
  type        text        NOT NULL,
  name        text        NOT NULL,
  seq_first   bigint      NOT NULL,
  seq_last    bigint      NOT NULL,
  actor       text        NOT NULL,
  origin      text        NOT NULL CHECK (origin IN ('client', 'api', 'restore')),
  occurred_at timestamptz NOT NULL,
  data        jsonb       NOT NULL,
  PRIMARY KEY (tenant_id, position),
  UNIQUE (id),
  FOREIGN KEY (tenant_id, name) REFERENCES documents (tenant_id, name)
);
-- A document's activity feed, and pruning by age.
CREATE INDEX change_events_document ON change_events (tenant_id, name, position);
CREATE INDEX change_events_age ON change_events (occurred_at);

-- Append-only for the runtime role, like the log.
GRANT SELECT, INSERT, UPDATE ON event_feeds TO concord_app;
GRANT SELECT, INSERT ON change_events TO concord_app;
ALTER TABLE event_feeds ENABLE ROW LEVEL SECURITY;
ALTER TABLE event_feeds FORCE ROW LEVEL SECURITY;
ALTER TABLE change_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE change_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_wall ON event_feeds
  USING (tenant_id = current_tenant()) WITH CHECK (tenant_id = current_tenant());
CREATE POLICY tenant_wall ON change_events
  USING (tenant_id = current_tenant()) WITH CHECK (tenant_id = current_tenant());

-- Pruning old events runs across tenants as the owner (like history retention,
-- schema/004): it reads and deletes events and moves each feed's horizon.
CREATE POLICY event_maintenance_read ON change_events FOR SELECT TO CURRENT_USER USING (true);
CREATE POLICY event_maintenance_prune ON change_events FOR DELETE TO CURRENT_USER USING (true);
CREATE POLICY event_maintenance_read ON event_feeds FOR SELECT TO CURRENT_USER USING (true);
CREATE POLICY event_maintenance_horizon ON event_feeds FOR UPDATE TO CURRENT_USER USING (true);
