import { Command } from 'commander';
import { loadConfig } from '../config.ts';
import { migrateSchema } from '../database.ts';
import { runCommand, withDatabase } from './command.ts';

const program = new Command('migrate')
  .description('Apply the pending schema/*.sql migrations (the server applies them too, at every start)')
  .action(async () => {
    const config = loadConfig();
    const outcome = await withDatabase(
      config,
      async (server) =>
        `the server at ${server.url} (process ${server.pid}) holds the embedded database and applied the migrations in schema/ when it started: nothing to do (restart it to apply newer ones)`,
      async (db, log) => {
        const applied = await migrateSchema(config, db, log);
        return applied.length ? `applied: ${applied.join(', ')}` : 'the schema is up to date';
      },
    );
    console.log(outcome);
  });

await runCommand(program);
