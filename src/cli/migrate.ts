import { ConfigError, loadConfig } from '../config.ts';
import { migrate } from '../db/migrate.ts';
import { createLogger } from '../log.ts';
import { openDatabase } from '../server.ts';

try {
  const config = loadConfig();
  const db = await openDatabase(config, createLogger(config.LOG_LEVEL));
  const applied = await migrate(db);
  console.log(applied.length ? `applied: ${applied.join(', ')}` : 'the schema is up to date');
  await db.close();
} catch (error) {
  console.error(`migrate: ${error instanceof ConfigError ? error.message : String(error)}`);
  process.exit(1);
}
