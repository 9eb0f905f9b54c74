// Config sources, lowest precedence first: defaults < config file (JSON) < ROOMCAST_* env < CLI.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { configSchema, type Config } from './schema.js';

export class ConfigError extends Error {}

type Shape = typeof configSchema.shape;
type Key = keyof Shape;

const keys = Object.keys(configSchema.shape) as Key[];

/** camelCase option -> ROOMCAST_SNAKE_CASE env var. */
export function envName(key: string): string {
  return 'ROOMCAST_' + key.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
}

/** Coerces a string (env or CLI) to the option's type, guided by its schema. */
function coerce(key: Key, value: string): unknown {
  const probe = configSchema.shape[key].safeParse(undefined);
  const def = probe.success ? probe.data : undefined;
  if (typeof def === 'boolean') return value === 'true' || value === '1' || value === '';
  if (key === 'workers' && value === 'auto') return 'auto';
  if (typeof def === 'number') {
    const n = Number(value);
    return Number.isFinite(n) ? n : value;
  }
  return value;
}

export function fromEnv(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    const v = env[envName(key)];
    if (v !== undefined) out[key] = coerce(key, v);
  }
  for (const name of Object.keys(env)) {
    if (name.startsWith('ROOMCAST_') && name !== 'ROOMCAST_CONFIG' && !keys.some((k) => envName(k) === name)) {
      throw new ConfigError(`unknown environment variable ${name}`);
    }
  }
  return out;
}

/** String-valued options (as from a CLI parser) coerced to their types. */
export function fromStrings(values: Record<string, string | boolean>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(values)) {
    out[k] = typeof v === 'string' && (keys as string[]).includes(k) ? coerce(k as Key, v) : v;
  }
  return out;
}

export function fromFile(path: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${path} must hold a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

/** Validates merged input; unknown keys and bad values are errors. The result is frozen. */
export function buildConfig(...layers: Record<string, unknown>[]): Config {
  const merged = Object.assign({}, ...layers);
  const res = configSchema.safeParse(merged);
  if (!res.success) throw new ConfigError('invalid configuration:\n' + z.prettifyError(res.error));
  const problem = unsafe(res.data);
  if (problem) throw new ConfigError(`invalid configuration: ${problem}`);
  return Object.freeze(res.data);
}

/** Minimum key sizes outside dev mode: an HS256 key of at least the hash size (RFC 7518 §3.2). */
export const MIN_SECRET_BYTES = 32;
export const MIN_API_KEY_CHARS = 16;

/** Combinations that would start an unsafe node; undefined when there is none. */
function unsafe(c: Config): string | undefined {
  if (c.secret !== null && Buffer.byteLength(c.secret) < MIN_SECRET_BYTES) {
    return `secret must be at least ${MIN_SECRET_BYTES} bytes (RFC 7518 §3.2); e.g. openssl rand -hex 32`;
  }
  if (c.secret !== null && c.apiKey !== null && c.apiKey.length < MIN_API_KEY_CHARS) {
    return `apiKey must be at least ${MIN_API_KEY_CHARS} characters; e.g. openssl rand -hex 16`;
  }
  if (c.allowGuests && c.guestRooms.length === 0) {
    return 'allowGuests needs guestRooms (--guest-rooms), the rooms guests may read, e.g. --guest-rooms "public-*" (or "*" for every room)';
  }
  return undefined;
}

/** The address to listen on: dev mode stays on loopback unless a host was given. */
export function listenHost(c: Config): string {
  return c.host ?? (c.secret === null ? '127.0.0.1' : '0.0.0.0');
}

export interface LoadSources {
  cli?: Record<string, string | boolean>;
  env?: NodeJS.ProcessEnv;
  configPath?: string;
}

export function loadConfig({ cli = {}, env = process.env, configPath }: LoadSources): Config {
  const path = configPath ?? env.ROOMCAST_CONFIG;
  return buildConfig(path ? fromFile(path) : {}, fromEnv(env), fromStrings(cli));
}
