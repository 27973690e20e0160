-- Who writes under which Yjs clientID, per document. A clientID is chosen by
-- the client, so it is claimed by the first user who writes under it (before
-- that write is applied, or in the commit that logs it while Postgres was
-- away) and stays theirs: structs of another user under it would collide with
-- the owner's next ones, and Yjs would drop one of them. The primary key
-- decides between two instances claiming one clientID at once. Server-side
-- edits (PATCH, restore) write under clientIDs of their own, claimed for the
-- API caller with that origin.
CREATE TABLE document_clients (
  tenant_id  text        NOT NULL,
  name       text        NOT NULL,
  client_id  bigint      NOT NULL CHECK (client_id >= 0),
  user_id    text        NOT NULL,
  origin     text        NOT NULL CHECK (origin IN ('client', 'api', 'restore')),
  claimed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, name, client_id),
  FOREIGN KEY (tenant_id, name) REFERENCES documents (tenant_id, name)
);

-- A claim is never moved or given up.
GRANT SELECT, INSERT ON document_clients TO concord_app;
ALTER TABLE document_clients ENABLE ROW LEVEL SECURITY;
ALTER TABLE document_clients FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_wall ON document_clients
  USING (tenant_id = current_tenant()) WITH CHECK (tenant_id = current_tenant());

-- How the author of an update (and of its audit rows) is known: `sender`, the
-- authenticated connection or API caller it arrived from; `client-owner`, the
-- owner of the clientIDs its content carries (content another instance relayed
-- and died before logging); `unknown` (user_id is then '').
ALTER TABLE document_updates ADD COLUMN attribution text NOT NULL DEFAULT 'sender'
  CHECK (attribution IN ('sender', 'client-owner', 'unknown'));
ALTER TABLE field_changes ADD COLUMN attribution text NOT NULL DEFAULT 'sender'
  CHECK (attribution IN ('sender', 'client-owner', 'unknown'));
