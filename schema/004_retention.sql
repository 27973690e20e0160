-- Pruning history (HISTORY_RETENTION_DAYS) deletes old updates whose state a
-- checkpoint keeps; it runs across tenants as the role that owns the tables
-- (the one applying this migration), never as concord_app, which stays unable
-- to delete any update. RLS is forced, so the owner needs policies of its own
-- for that: reading documents, updates and checkpoints, and deleting updates.
CREATE POLICY history_maintenance ON documents FOR SELECT TO CURRENT_USER USING (true);
CREATE POLICY history_maintenance ON document_checkpoints FOR SELECT TO CURRENT_USER USING (true);
CREATE POLICY history_maintenance_read ON document_updates FOR SELECT TO CURRENT_USER USING (true);
CREATE POLICY history_maintenance_prune ON document_updates FOR DELETE TO CURRENT_USER USING (true);
