import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Database } from './database.ts';

const schemaDirectory = fileURLToPath(new URL('../../schema/', import.meta.url));
// Any constant works: it only has to be the same for every Concord instance.
const MIGRATION_LOCK = 7_341_002;

/** Applies the numbered `.sql` files in `schema/` that have not run yet, in order. */
export async function migrate(db: Database): Promise<string[]> {
  const files = readdirSync(schemaDirectory)
    .filter((file) => /^\d+_.+\.sql$/.test(file))
    .sort();
  return db.ownerTransaction(async (sql) => {
    // Two instances starting together must not both apply the same file.
    await sql.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
    await sql.query(`
      CREATE TABLE IF NOT EXISTS schema_migrations (
        file text PRIMARY KEY,
        applied_at timestamptz NOT NULL DEFAULT now()
      )`);
    // Holds no tenant data and the runtime role has no grant on it; RLS is
    // still forced so that "every table" holds without exception.
    await sql.query('ALTER TABLE schema_migrations ENABLE ROW LEVEL SECURITY');
    await sql.query('ALTER TABLE schema_migrations FORCE ROW LEVEL SECURITY');
    await sql.query(`
      DO $$ BEGIN
        IF NOT EXISTS (SELECT FROM pg_policies WHERE tablename = 'schema_migrations') THEN
          CREATE POLICY owner_only ON schema_migrations USING (true);
        END IF;
      END $$`);
    const { rows } = await sql.query<{ file: string }>('SELECT file FROM schema_migrations');
    const applied = new Set(rows.map((row) => row.file));
    const pending = files.filter((file) => !applied.has(file));
    for (const file of pending) {
      await sql.exec(readFileSync(schemaDirectory + file, 'utf8'));
      await sql.query('INSERT INTO schema_migrations (file) VALUES ($1)', [file]);
    }
    return pending;
  });
}
