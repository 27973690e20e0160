-- A commit sent in one round trip (src/persistence/update-log.ts): the update
-- log predicts its updates' seqs from the versions it knows and builds the
-- audit rows, tables and events on them before the append runs. Run right
-- after that append, this refuses the commit (SQLSTATE CV001) when a
-- document's version is not the predicted one: another writer logged it first.
-- The caller then rolls back to before the append and goes the longer way.
-- As the caller: row-level security keeps it to the transaction's tenant.
CREATE FUNCTION expect_document_versions(names text[], versions bigint[]) RETURNS void
  LANGUAGE plpgsql
  AS $$
BEGIN
  IF EXISTS (
    SELECT FROM unnest(names, versions) AS expected(name, version)
    LEFT JOIN documents d ON d.tenant_id = current_tenant() AND d.name = expected.name
    WHERE d.version IS DISTINCT FROM expected.version
  ) THEN
    RAISE EXCEPTION 'a document was logged by another writer since its version was last known here'
      USING ERRCODE = 'CV001';
  END IF;
END
$$;
