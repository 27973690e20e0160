-- History: finding a version by time, and paging audit rows.

-- "The version at <time>": the last update received at or before it.
CREATE INDEX document_updates_by_time ON document_updates (tenant_id, name, received_at, seq);

-- Audit rows are paged by id (a text burst's row moves its seq while it grows; its id never moves).
CREATE INDEX field_changes_by_document_id ON field_changes (tenant_id, name, id);
