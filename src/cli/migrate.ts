import { ConfigError, loadConfig } from '../config.ts';
import { createLogger } from '../log.ts';
import { migrateSchema, openDatabase } from '../server.ts';

try {
  const config = loadConfig();
  const log = createLogger(config.LOG_LEVEL);
  const db = await openDatabase(config, log);
  const applied = await migrateSchema(config, db, log);
  console.log(applied.length ? `applied: ${applied.join(', ')}` : 'the schema is up to date');
  await db.close();
} catch (error) {
  console.error(`migrate: ${error instanceof ConfigError ? error.message : String(error)}`);
  process.exit(1);
}
