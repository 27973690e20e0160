-- A checkpoint's compact state (src/persistence/compact.ts): the same version
-- with the map values it overwrote left out, read by version reads only (a
-- live document always loads `state`). Null on checkpoints written before it:
-- versions after those are read from `state`.
ALTER TABLE document_checkpoints ADD COLUMN compact_state bytea;
