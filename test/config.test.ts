import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildConfig, ConfigError, envName, loadConfig } from '../src/config/load.js';

describe('config', () => {
  it('has documented defaults', () => {
    const c = buildConfig({});
    expect(c).toMatchObject({ port: 8080, workers: 1, redis: null, secret: null, tickMs: 50, roomChatBudget: 60, maxBodyBytes: 300, maxRoomsPerConn: 8 });
    expect(c).toMatchObject({ chatRate: 1, chatBurst: 3, likeRate: 10, joinRate: 5 });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('reads --trust-proxy as a comma-separated list of addresses and CIDRs', () => {
    expect(loadConfig({ env: {}, cli: { trustProxy: '10.0.0.0/8, 192.168.1.1,::1,fd00::/8' } }).trustProxy).toEqual(['10.0.0.0/8', '192.168.1.1', '::1', 'fd00::/8']);
    for (const bad of ['10.0.0.0/33', 'proxy.local', '10.0.0.0/8/1', '::1/129']) expect(() => buildConfig({ trustProxy: [bad] }), bad).toThrow(/trustProxy/);
  });

  it('rejects unknown keys and bad values', () => {
    expect(() => buildConfig({ tickMS: 10 })).toThrow(ConfigError);
    expect(() => buildConfig({ tickMs: 'fast' })).toThrow(/tickMs/);
    expect(() => buildConfig({ port: 70000 })).toThrow(ConfigError);
    expect(() => buildConfig({ workers: 0 })).toThrow(ConfigError);
  });

  it('layers file < env < CLI', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rc-cfg-'));
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify({ port: 1111, tickMs: 20, host: '127.0.0.1' }));
    const c = loadConfig({ configPath: file, env: { ROOMCAST_TICK_MS: '30', ROOMCAST_ALLOW_GUESTS: 'true', ROOMCAST_GUEST_ROOMS: 'public-*' }, cli: { tickMs: '40' } });
    expect(c).toMatchObject({ port: 1111, tickMs: 40, host: '127.0.0.1', allowGuests: true });
  });

  it('rejects unknown ROOMCAST_ variables and a broken config file', () => {
    expect(() => loadConfig({ env: { ROOMCAST_TICKMS: '5' } })).toThrow(/ROOMCAST_TICKMS/);
    const dir = mkdtempSync(join(tmpdir(), 'rc-cfg-'));
    const file = join(dir, 'bad.json');
    writeFileSync(file, '{not json');
    expect(() => loadConfig({ configPath: file, env: {} })).toThrow(ConfigError);
  });

  it('parses comma lists and "auto" workers from strings', () => {
    const c = loadConfig({ env: { ROOMCAST_BLOCKLIST: 'foo, bar' }, cli: { workers: 'auto' } });
    expect(c.blocklist).toEqual(['foo', 'bar']);
    expect(c.workers).toBe('auto');
  });

  it('maps option names to env names', () => {
    expect(envName('maxBodyBytes')).toBe('ROOMCAST_MAX_BODY_BYTES');
  });
});
