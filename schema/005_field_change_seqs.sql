-- The updates an audit row covers. A text burst's row spans first_seq to seq,
-- but its author's other updates in that span (a change to another field
-- between two keystrokes) are not part of it: `seqs` names exactly the updates
-- that made the row (one range while nobody else writes in between). NULL on
-- rows written before this column, which cover their author's updates from
-- first_seq to seq.
ALTER TABLE field_changes ADD COLUMN seqs int8multirange;
GRANT UPDATE (seqs) ON field_changes TO concord_app;
