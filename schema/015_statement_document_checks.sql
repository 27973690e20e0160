-- Every logged update and audit row names a document that exists, checked once
-- per statement rather than once per row. A foreign key checks each inserted
-- row with a query of its own: a commit's append and audit rows (hundreds at
-- full speed) spent about a fifth of the commit's PostgreSQL time on them,
-- for documents the append had just upserted in the same statement. The rule
-- is the same: an insert naming a missing document fails with SQLSTATE 23503,
-- and a document with logged updates or audit rows cannot be deleted or renamed.

ALTER TABLE document_updates DROP CONSTRAINT document_updates_tenant_id_name_fkey;
ALTER TABLE field_changes DROP CONSTRAINT field_changes_tenant_id_name_fkey;

-- As the inserting role: row-level security shows it its tenant's documents,
-- the only ones its rows may name.
CREATE FUNCTION inserted_rows_name_documents() RETURNS trigger
  LANGUAGE plpgsql
  AS $$
BEGIN
  IF EXISTS (
    SELECT FROM (SELECT DISTINCT tenant_id, name FROM inserted) AS named
    WHERE NOT EXISTS (SELECT FROM documents d WHERE d.tenant_id = named.tenant_id AND d.name = named.name)
  ) THEN
    RAISE EXCEPTION 'a row inserted into % names a document that does not exist', TG_TABLE_NAME
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER document_updates_name_documents AFTER INSERT ON document_updates
  REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION inserted_rows_name_documents();
CREATE TRIGGER field_changes_name_documents AFTER INSERT ON field_changes
  REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION inserted_rows_name_documents();

-- What the foreign keys' other side refused, as the caller. Nothing deletes or
-- renames a document (the runtime role may not delete one at all), so this
-- never runs on the commit path: the append's update sets only the version.
CREATE FUNCTION document_keeps_its_rows() RETURNS trigger
  LANGUAGE plpgsql
  AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND (OLD.tenant_id, OLD.name) IS NOT DISTINCT FROM (NEW.tenant_id, NEW.name) THEN
    RETURN NULL;
  END IF;
  IF EXISTS (SELECT FROM document_updates u WHERE u.tenant_id = OLD.tenant_id AND u.name = OLD.name)
     OR EXISTS (SELECT FROM field_changes f WHERE f.tenant_id = OLD.tenant_id AND f.name = OLD.name) THEN
    RAISE EXCEPTION 'document % has logged updates or audit rows: it cannot be deleted or renamed', OLD.name
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN NULL;
END
$$;

CREATE TRIGGER documents_keep_their_rows AFTER DELETE OR UPDATE OF tenant_id, name ON documents
  FOR EACH ROW EXECUTE FUNCTION document_keeps_its_rows();
