import { Command, InvalidArgumentError } from 'commander';
import { ConfigError, loadConfig } from '../config.ts';
import { pruneHistory } from '../history/retention.ts';
import { retentionCutoff } from '../maintenance.ts';
import { migrateSchema, pruneTarget } from '../database.ts';
import { runCommand, withHistoryStore, type RunningServer } from './command.ts';

function days(value: string): number {
  const parsed = Number(value);
  if (!/^\d+$/.test(value) || parsed < 1) throw new InvalidArgumentError('a whole number of days, at least 1');
  return parsed;
}

const program = new Command('prune')
  .description('Prune document history older than the retention period down to checkpoints (what the server does hourly when HISTORY_RETENTION_DAYS is set)')
  .option('--older-than-days <days>', 'age of the updates to prune (default: HISTORY_RETENTION_DAYS)', days)
  .action(async (options: { olderThanDays?: number }) => {
    const config = loadConfig();
    const retentionDays = options.olderThanDays ?? config.HISTORY_RETENTION_DAYS;
    if (!retentionDays) throw new ConfigError('say how old: --older-than-days <days>, or set HISTORY_RETENTION_DAYS');
    const serverPrunes = async (server: RunningServer) => {
      throw new ConfigError(
        `the server at ${server.url} (process ${server.pid}) holds the embedded database: it prunes by itself, at start and hourly, when HISTORY_RETENTION_DAYS is set; stop it to prune now`,
      );
    };
    await withHistoryStore(config, serverPrunes, async (db, checkpointer, log) => {
      await migrateSchema(config, db, log);
      const before = retentionCutoff(retentionDays);
      const { documents, updates } = await pruneHistory(pruneTarget(config, db, checkpointer, log), before);
      console.log(`pruned ${updates} update(s) received before ${before.toISOString()} from ${documents} document(s); their checkpoints and every later version are kept`);
    });
  });

await runCommand(program);
