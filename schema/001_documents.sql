-- The runtime role: owns nothing, so row-level security always applies to it.
-- The server connects with the migration role and switches to it per transaction.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'concord_app') THEN
    CREATE ROLE concord_app NOLOGIN;
  END IF;
END
$$;
GRANT concord_app TO CURRENT_USER;
GRANT USAGE ON SCHEMA public TO concord_app;

-- The tenant of the current transaction; '' (a finished transaction-local
-- setting) and NULL both mean "no tenant", which matches no row.
CREATE FUNCTION current_tenant() RETURNS text
  LANGUAGE sql STABLE
  AS $$ SELECT NULLIF(current_setting('app.tenant_id', true), '') $$;

CREATE TABLE documents (
  tenant_id  text        NOT NULL,
  name       text        NOT NULL,
  kind       text        NOT NULL,
  doc_id     text        NOT NULL,
  version    bigint      NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, name),
  CHECK (name = tenant_id || '/' || kind || '/' || doc_id)
);

-- Append-only: the runtime role may insert and read, never update or delete.
CREATE TABLE document_updates (
  tenant_id   text        NOT NULL,
  name        text        NOT NULL,
  seq         bigint      NOT NULL CHECK (seq > 0),
  update      bytea       NOT NULL,
  user_id     text        NOT NULL,
  origin      text        NOT NULL CHECK (origin IN ('client', 'api', 'restore')),
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, name, seq),
  FOREIGN KEY (tenant_id, name) REFERENCES documents (tenant_id, name)
);

CREATE TABLE document_checkpoints (
  tenant_id  text        NOT NULL,
  name       text        NOT NULL,
  seq        bigint      NOT NULL CHECK (seq > 0),
  state      bytea       NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, name, seq),
  FOREIGN KEY (tenant_id, name) REFERENCES documents (tenant_id, name)
);

GRANT SELECT, INSERT, UPDATE ON documents TO concord_app;
GRANT SELECT, INSERT ON document_updates TO concord_app;
GRANT SELECT, INSERT ON document_checkpoints TO concord_app;

ALTER TABLE documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE documents FORCE ROW LEVEL SECURITY;
ALTER TABLE document_updates ENABLE ROW LEVEL SECURITY;
ALTER TABLE document_updates FORCE ROW LEVEL SECURITY;
ALTER TABLE document_checkpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE document_checkpoints FORCE ROW LEVEL SECURITY;

CREATE POLICY tenant_wall ON documents
  USING (tenant_id = current_tenant()) WITH CHECK (tenant_id = current_tenant());
CREATE POLICY tenant_wall ON document_updates
  USING (tenant_id = current_tenant()) WITH CHECK (tenant_id = current_tenant());
CREATE POLICY tenant_wall ON document_checkpoints
  USING (tenant_id = current_tenant()) WITH CHECK (tenant_id = current_tenant());
