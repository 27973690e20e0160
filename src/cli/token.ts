import { Command, InvalidArgumentError, Option } from 'commander';
import { resolveTokenKey } from '../auth/keys.ts';
import { roles, signToken, type Role } from '../auth/tokens.ts';
import { ConfigError, loadConfig } from '../config.ts';
import { idPattern } from '../documents/name.ts';
import { runCommand } from './command.ts';

function identifier(value: string): string {
  if (!idPattern.test(value)) throw new InvalidArgumentError('letters, digits, _ and -, at most 64');
  return value;
}

const program = new Command('token')
  .description(
    "Print a token signed with the server's HS256 secret: AUTH_JWT_SECRET, or the development secret the server created in DATA_DIR. Which one is said on stderr, so TOKEN=$(npm run -s token -- ...) captures only the token",
  )
  .requiredOption('--tenant <tenant>', 'tenant id', identifier)
  .requiredOption('--user <id>', 'user id (sub)')
  .addOption(new Option('--role <role>', 'role').choices(roles).default('viewer'))
  .option('--name <name>', 'display name')
  .option('--ttl <span>', 'lifetime, such as 15m, 1h, 7d', '1h')
  .option('--docs <list>', 'comma-separated <kind>/<id> the token is limited to', (value: string) => value.split(',').filter(Boolean))
  .action(async (options: { tenant: string; user: string; role: Role; name?: string; ttl: string; docs?: string[] }) => {
    const config = loadConfig();
    // Only the server creates the development secret: one made here would sign tokens the server refuses.
    const key = resolveTokenKey(config, { create: false });
    if (key.kind !== 'secret') {
      throw new ConfigError('tokens for AUTH_PUBLIC_KEY or AUTH_JWKS_URL come from your identity provider; npm run token signs only with AUTH_JWT_SECRET or the development secret');
    }
    const token = await signToken(key.secret, {
      tenant: options.tenant,
      userId: options.user,
      role: options.role,
      name: options.name,
      docs: options.docs,
      ttl: options.ttl,
      issuer: config.AUTH_ISSUER,
      audience: config.AUTH_AUDIENCE,
    });
    console.log(token);
    console.error(`token: signed with ${key.development ? `the development secret in ${key.source}` : key.source}`);
  });

await runCommand(program);
