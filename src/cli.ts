#!/usr/bin/env node
// argv / env / config file -> a validated config -> a running worker; and `roomcast token`.
import { Command, Option } from 'commander';
import { ConfigError, envName, loadConfig } from './config/load.js';
import { configSchema, usesRedis } from './config/schema.js';
import { mintToken, type Role } from './auth/tokens.js';
import { startNode } from './node.js';
import { startSupervisor } from './cluster/supervisor.js';
import { createLogger } from './log.js';

const kebab = (k: string) => k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());

function describe(key: keyof typeof configSchema.shape): string {
  const field = configSchema.shape[key];
  const probe = field.safeParse(undefined);
  const def = probe.success ? JSON.stringify(probe.data) : 'none';
  return `${field.description ?? ''} (default: ${def}; env ${envName(key)})`;
}

const program = new Command('roomcast').description('live-room broadcast engine').showHelpAfterError();

const start = program.command('start').description('run a roomcast node (one worker + in-memory bus by default)');
start.addOption(new Option('--config <file>', 'JSON config file (env ROOMCAST_CONFIG)'));
for (const key of Object.keys(configSchema.shape) as Array<keyof typeof configSchema.shape>) {
  const bool = configSchema.shape[key].safeParse(undefined).data === false;
  start.addOption(new Option(bool ? `--${kebab(key)}` : `--${kebab(key)} <value>`, describe(key)));
}
start.action(async (opts: Record<string, string | boolean>) => {
  const { config: configPath, ...cli } = opts;
  let config;
  try {
    config = loadConfig({ cli, configPath: typeof configPath === 'string' ? configPath : undefined });
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
  if (config.workers !== 1 && !usesRedis(config)) {
    console.error('roomcast: more than one worker needs --redis or --redis-cluster (workers share rooms through Redis streams)');
    process.exit(2);
  }
  // With Redis, a supervisor runs the workers (even one: it restarts it); without, one
  // in-process worker with the in-memory bus is the embedded default.
  const stop =
    !usesRedis(config)
      ? (await startNode(config)).stop
      : (await startSupervisor(config, createLogger(config.logLevel, { role: 'supervisor' }))).stop;
  const shutdown = (signal: string) => {
    void stop(`node ${signal === 'SIGINT' ? 'stopping' : 'draining'}`).then(() => process.exit(0));
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
});

program
  .command('token')
  .description('mint a client token (HS256) as a business backend would')
  .requiredOption('--secret <secret>', 'the deployment secret')
  .requiredOption('--uid <uid>', 'user id (sub)')
  .option('--name <name>', 'display name')
  .option('--ttl <seconds>', 'lifetime in seconds', '3600')
  .option('--rooms <list>', 'comma-separated allowed rooms; an entry ending in * is a prefix')
  .addOption(new Option('--role <role>', 'viewer or moderator').choices(['viewer', 'moderator']))
  .action(async (o: { secret: string; uid: string; name?: string; ttl: string; rooms?: string; role?: Role }) => {
    const ttlSec = Number(o.ttl);
    if (!Number.isInteger(ttlSec) || ttlSec <= 0) program.error('--ttl must be a positive integer');
    const rooms = o.rooms?.split(',').map((r) => r.trim()).filter(Boolean);
    console.log(await mintToken(o.secret, { uid: o.uid, name: o.name, ttlSec, rooms, role: o.role }));
  });

await program.parseAsync(process.argv);
