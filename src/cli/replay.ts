import { Command, InvalidArgumentError, Option } from 'commander';
import { loadConfig } from '../config.ts';
import { parseDocumentName } from '../documents/name.ts';
import { isPostgresTime } from '../documents/values.ts';
import { readVersion } from '../history/service.ts';
import { Versions } from '../history/versions.ts';
import { runCommand, withHistoryStore } from './command.ts';

function seq(value: string): number {
  if (!/^\d{1,15}$/.test(value)) throw new InvalidArgumentError('a whole number (0 is the empty document)');
  return Number(value);
}

function time(value: string): Date {
  const at = new Date(value);
  if (!/^\d{4}-\d{2}-\d{2}T/.test(value) || Number.isNaN(at.getTime()) || !isPostgresTime(at)) {
    throw new InvalidArgumentError('an ISO time in the years 0001 to 9999, such as 2026-05-04T12:00:00Z');
  }
  return at;
}

const program = new Command('replay')
  .description('Print a past version of a document in its JSON form, as GET /api/documents/:kind/:id/versions does')
  .argument('<document>', '<tenant>/<kind>/<id>')
  .addOption(new Option('--version <seq>', 'the version after update <seq>').argParser(seq).conflicts('at'))
  .addOption(new Option('--at <time>', 'the version at that moment (ISO time)').argParser(time))
  .action(async (name: string, options: { version?: number; at?: Date }) => {
    const document = parseDocumentName(name);
    if (options.version === undefined && options.at === undefined) throw new InvalidArgumentError('say which version: --version <seq> or --at <time>');
    await withHistoryStore(loadConfig(), async (db, checkpointer, log) => {
      // One read: no replica to keep.
      const versions = new Versions(db, checkpointer, log, 0);
      const seq = options.version ?? (await versions.seqAt(document, options.at!));
      console.log(JSON.stringify((await readVersion(versions, document, seq)).version, null, 2));
    });
  });

await runCommand(program);
