/**
 * Which Redis: exactly one of REDIS_URL, REDIS_CLUSTER_NODES and
 * REDIS_SENTINELS (with REDIS_SENTINEL_NAME); a wrong combination stops the
 * process at start with one plain message.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, redisTarget } from '../../src/config.js';

const MAIN = path.resolve(import.meta.dirname, '../../dist/src/main.js');
const WORKER = path.resolve(import.meta.dirname, '../../dist/workers/worker.js');

describe('the Redis settings', () => {
  it('take one node from REDIS_URL, as before', () => {
    expect(redisTarget(loadConfig({ REDIS_URL: 'redis://10.0.0.5:6380' }))).toEqual({ kind: 'single', url: 'redis://10.0.0.5:6380' });
    expect(redisTarget(loadConfig({}))).toEqual({ kind: 'single', url: '' });
  });

  it('take a cluster from REDIS_CLUSTER_NODES', () => {
    expect(redisTarget(loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000, 10.0.0.2:7001,[::1]:7002' }))).toEqual({
      kind: 'cluster', nodes: [{ host: '10.0.0.1', port: 7000 }, { host: '10.0.0.2', port: 7001 }, { host: '::1', port: 7002 }],
    });
  });

  it('take a Sentinel group from REDIS_SENTINELS and REDIS_SENTINEL_NAME', () => {
    expect(redisTarget(loadConfig({ REDIS_SENTINELS: 's1:26379,s2:26380', REDIS_SENTINEL_NAME: 'mymaster' }))).toEqual({
      kind: 'sentinel', sentinels: [{ host: 's1', port: 26379 }, { host: 's2', port: 26380 }], name: 'mymaster',
    });
  });

  it.each([
    [{ REDIS_URL: 'redis://a:6379', REDIS_CLUSTER_NODES: 'b:7000' }, /REDIS_URL and REDIS_CLUSTER_NODES are both set/],
    [{ REDIS_URL: 'redis://a:6379', REDIS_SENTINELS: 'b:26379', REDIS_SENTINEL_NAME: 'm' }, /REDIS_URL and REDIS_SENTINELS are both set/],
    [{ REDIS_CLUSTER_NODES: 'a:7000', REDIS_SENTINELS: 'b:26379', REDIS_SENTINEL_NAME: 'm' }, /REDIS_CLUSTER_NODES and REDIS_SENTINELS are both set/],
    [{ REDIS_SENTINELS: 'b:26379' }, /REDIS_SENTINELS is set without REDIS_SENTINEL_NAME/],
    [{ REDIS_SENTINEL_NAME: 'm' }, /REDIS_SENTINEL_NAME is set without REDIS_SENTINELS/],
    [{ REDIS_CLUSTER_NODES: 'a:7000,b' }, /REDIS_CLUSTER_NODES: entry 2 \(b\) must be host:port/],
    [{ REDIS_CLUSTER_NODES: 'a:70000' }, /port from 1 to 65535/],
    [{ NORMLAB_PREFIX: '{normlab}' }, /NORMLAB_PREFIX=\{normlab\}: must match/],
  ])('refuse %o', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });

  it.each([['api', MAIN, ['--role', 'api']], ['worker', WORKER, []]])('stop the %s process at start with one plain line on a wrong combination', (_, file, args) => {
    const run = spawnSync(process.execPath, [file, ...args], {
      env: { ...process.env, REDIS_URL: 'redis://127.0.0.1:1', REDIS_CLUSTER_NODES: '127.0.0.1:2', LOG_LEVEL: 'silent' },
      encoding: 'utf8', timeout: 20_000,
    });
    expect(run.status).toBe(1);
    expect(run.stderr.trim()).toMatch(/^REDIS_URL and REDIS_CLUSTER_NODES are both set: set exactly one of/);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });
});
