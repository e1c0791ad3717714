/**
 * Real Redis deployments for the cluster and Sentinel tests (and the
 * cluster bench, bench/burst.mjs --redis cluster), on loopback
 * ports of their own (never the shared 6379), each server in a temporary
 * directory removed by `stop`:
 * - a Redis Cluster of 3 primaries and 3 replicas (`--cluster-enabled yes`,
 *   `redis-cli --cluster create … --cluster-replicas 1`);
 * - a Sentinel group: one primary, one replica, three sentinels.
 * Timeouts are short (node timeout, down-after: 1000 ms) so a failover takes
 * a few seconds.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';

export const FAILOVER_TIMEOUT_MS = 1000;

/** @typedef {{ port: number, dir: string, child: import('node:child_process').ChildProcess, output: string }} Server */
/** @typedef {{ host: string, port: number }} HostPort */

/**
 * Poll `condition` every 20 ms until it holds; throws after `timeoutMs`.
 * @param {() => boolean | Promise<boolean>} condition
 * @param {number} timeoutMs
 * @param {string} what
 */
async function until(condition, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** @param {number} port */
async function portFree(port) {
  const server = net.createServer();
  try {
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    return true;
  } catch {
    return false;
  } finally {
    server.close();
  }
}

/**
 * `count` free ports whose cluster bus port (port + 10000) is free too,
 * picked at random so parallel test files do not collide. Both stay below
 * 32768, where Linux's ephemeral range starts: a port found free there could
 * be taken as some connection's source port before the server binds it.
 */
/** @param {number} count @returns {Promise<number[]>} */
export async function freePorts(count) {
  /** @type {number[]} */
  const ports = [];
  while (ports.length < count) {
    const port = 12000 + Math.floor(Math.random() * 10000);
    if (ports.includes(port)) continue;
    if (await portFree(port) && await portFree(port + 10000)) ports.push(port);
  }
  return ports;
}

/** @param {number} port @param {string[]} args @param {string} [configFile] @returns {Server} */
function startServer(port, args, configFile) {
  const dir = mkdtempSync(path.join(os.tmpdir(), `normlab-redis-${port}-`));
  const argv = configFile ? [path.join(dir, 'redis.conf')] : [];
  if (configFile) writeFileSync(argv[0], configFile);
  const child = spawn('redis-server', [...argv, '--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
    '--save', '', '--appendonly', 'no', '--daemonize', 'no', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  /** @type {Server} */
  const server = { port, dir, child, output: '' };
  child.stdout?.on('data', (d) => { server.output += d; });
  child.stderr?.on('data', (d) => { server.output += d; });
  return server;
}

/** @param {number} port */
async function answers(port) {
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/** Run one command on a node and return its reply. @param {number} port @param {...string} args @returns {Promise<unknown>} */
export async function command(port, ...args) {
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    return await client.call(args[0], ...args.slice(1));
  } finally {
    client.disconnect();
  }
}

/** @param {Server} server */
async function kill(server) {
  if (server.child.exitCode !== null || server.child.signalCode !== null) return;
  server.child.kill('SIGKILL');
  await once(server.child, 'exit');
}

class Deployment {
  /** @type {Server[]} */
  servers = [];

  /** Kill -9 the server on `port` (its data stays in its directory until `stop`). @param {number} port */
  async kill(port) {
    const server = this.servers.find((s) => s.port === port);
    if (!server) throw new Error(`no server on port ${port}`);
    await kill(server);
  }

  /** Stop (SIGSTOP) or continue (SIGCONT) the server on `port`: a replica that falls silent. @param {number} port @param {'SIGSTOP' | 'SIGCONT'} signal */
  signal(port, signal) {
    const server = this.servers.find((s) => s.port === port);
    if (!server) throw new Error(`no server on port ${port}`);
    server.child.kill(signal);
  }

  async stop() {
    for (const s of this.servers) if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGCONT');
    await Promise.all(this.servers.map(kill));
    for (const s of this.servers) rmSync(s.dir, { recursive: true, force: true });
    this.servers = [];
  }
}

/** One redis-server, persistence off like the cluster's nodes (the one-node side of the cluster bench). */
export class SingleRedisServer extends Deployment {
  port = 0;

  static async start() {
    const single = new SingleRedisServer();
    [single.port] = await freePorts(1);
    single.servers.push(startServer(single.port, []));
    await until(() => answers(single.port), 10_000, `redis ${single.port}`);
    return single;
  }

  /** @returns {{ redisUrl: string }} */
  config() {
    return { redisUrl: `redis://127.0.0.1:${this.port}` };
  }
}

export class RedisClusterServers extends Deployment {
  /** @type {number[]} */
  ports = [];

  static async start() {
    const cluster = new RedisClusterServers();
    try {
      cluster.ports = await freePorts(6);
      cluster.servers = cluster.ports.map((port) => startServer(port, [
        '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf',
        '--cluster-node-timeout', String(FAILOVER_TIMEOUT_MS),
        // Any replica may take over, however long it was cut off (the tests kill primaries at will).
        '--cluster-replica-validity-factor', '0',
        // The other primaries keep serving their slots while one fails over.
        '--cluster-require-full-coverage', 'no',
      ]));
      for (const port of cluster.ports) await until(() => answers(port), 10_000, `cluster node ${port}`);
      const create = spawnSync('redis-cli', ['--cluster', 'create', ...cluster.ports.map((p) => `127.0.0.1:${p}`),
        '--cluster-replicas', '1', '--cluster-yes'], { encoding: 'utf8', timeout: 30_000 });
      if (create.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${create.stdout}\n${create.stderr}`);
      await until(async () => {
        for (const port of cluster.ports) {
          const info = String(await command(port, 'CLUSTER', 'INFO'));
          if (!info.includes('cluster_state:ok') || !info.includes('cluster_known_nodes:6')) return false;
        }
        return (await cluster.replicas()).length === 3;
      }, 20_000, 'the cluster to be ready');
      return cluster;
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }

  /** The settings of a service on this cluster (REDIS_CLUSTER_NODES; two seeds are enough). @returns {{ redisUrl: string, redisClusterNodes: HostPort[] }} */
  config() {
    return { redisUrl: '', redisClusterNodes: this.ports.slice(0, 2).map((port) => ({ host: '127.0.0.1', port })) };
  }

  /** Ports of the live nodes that are replicas with their replication link up. */
  async replicas() {
    /** @type {number[]} */
    const result = [];
    for (const s of this.servers) {
      if (s.child.exitCode !== null || s.child.signalCode !== null) continue;
      const info = String(await command(s.port, 'INFO', 'replication').catch(() => ''));
      if (info.includes('role:slave') && info.includes('master_link_status:up')) result.push(s.port);
    }
    return result;
  }

  /** The port of the primary that serves `key`'s slot now, asked of a live node. */
  /** @param {string} key */
  async primaryOf(key) {
    const live = this.servers.find((s) => s.child.exitCode === null && s.child.signalCode === null);
    if (!live) throw new Error('no live node');
    return this.primaryOfSlot(Number(await command(live.port, 'CLUSTER', 'KEYSLOT', key)));
  }


  /**
   * Move one slot with its keys to the primary on `toPort`, as a resharding
   * does (IMPORTING / MIGRATING, MIGRATE, SETSLOT NODE): clients get ASK,
   * then MOVED. @param {number} slot @param {number} toPort
   */
  async moveSlot(slot, toPort) {
    const fromPort = await this.primaryOfSlot(slot);
    if (fromPort === toPort) throw new Error(`slot ${slot} is already on ${toPort}`);
    const [fromId, toId] = await Promise.all([command(fromPort, 'CLUSTER', 'MYID'), command(toPort, 'CLUSTER', 'MYID')]);
    await command(toPort, 'CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', String(fromId));
    await command(fromPort, 'CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', String(toId));
    for (;;) {
      const keys = /** @type {string[]} */ (await command(fromPort, 'CLUSTER', 'GETKEYSINSLOT', String(slot), '100'));
      if (keys.length === 0) break;
      await command(fromPort, 'MIGRATE', '127.0.0.1', String(toPort), '', '0', '5000', 'KEYS', ...keys);
    }
    for (const port of [toPort, fromPort]) await command(port, 'CLUSTER', 'SETSLOT', String(slot), 'NODE', String(toId));
  }

  /** The port of the primary that serves `slot` now. @param {number} slot */
  async primaryOfSlot(slot) {
    const live = this.servers.find((s) => s.child.exitCode === null && s.child.signalCode === null);
    if (!live) throw new Error('no live node');
    const ranges = /** @type {Array<[number, number, [string, number]]>} */ (await command(live.port, 'CLUSTER', 'SLOTS'));
    const range = ranges.find(([from, to]) => slot >= from && slot <= to);
    if (!range) throw new Error(`no node serves slot ${slot}`);
    return Number(range[2][1]);
  }
}

export const SENTINEL_NAME = 'normlab-primary';

export class SentinelServers extends Deployment {
  primaryPort = 0;
  replicaPort = 0;
  /** @type {number[]} */
  sentinelPorts = [];

  static async start() {
    const group = new SentinelServers();
    try {
      const [primary, replica, ...sentinels] = await freePorts(5);
      Object.assign(group, { primaryPort: primary, replicaPort: replica, sentinelPorts: sentinels });
      group.servers.push(startServer(primary, []));
      group.servers.push(startServer(replica, ['--replicaof', '127.0.0.1', String(primary)]));
      for (const port of [primary, replica]) await until(() => answers(port), 10_000, `redis ${port}`);
      await until(async () => String(await command(replica, 'INFO', 'replication')).includes('master_link_status:up'), 20_000, 'the replica to sync');
      for (const port of sentinels) {
        group.servers.push(startServer(port, ['--sentinel'], [
          `sentinel monitor ${SENTINEL_NAME} 127.0.0.1 ${primary} 2`,
          `sentinel down-after-milliseconds ${SENTINEL_NAME} ${FAILOVER_TIMEOUT_MS}`,
          `sentinel failover-timeout ${SENTINEL_NAME} 10000`,
          `sentinel parallel-syncs ${SENTINEL_NAME} 1`,
          '',
        ].join('\n')));
      }
      for (const port of sentinels) {
        let info = '';
        await until(async () => {
          info = String(await command(port, 'INFO', 'sentinel').catch((err) => `(${err.message})`));
          return info.includes('status=ok') && info.includes('slaves=1') && info.includes('sentinels=3');
        }, 20_000, `sentinel ${port} to see the primary, its replica and the other sentinels`).catch((err) => {
          // What it saw and its log's end, to tell a slow discovery from a sentinel that never started.
          const log = group.servers.find((s) => s.port === port)?.output.slice(-600) ?? '';
          throw new Error(`${err.message}; its last INFO sentinel: ${info.trim().split('\n').at(-1)}; its log ends: ${log}`);
        });
      }
      return group;
    } catch (err) {
      await group.stop();
      throw err;
    }
  }

  /** @returns {{ redisUrl: string, redisSentinels: HostPort[], redisSentinelName: string }} */
  config() {
    return { redisUrl: '', redisSentinels: this.sentinelPorts.map((port) => ({ host: '127.0.0.1', port })), redisSentinelName: SENTINEL_NAME };
  }

  /** The primary's port as the sentinels report it now. */
  async currentPrimary() {
    const [, port] = /** @type {[string, string]} */ (await command(this.sentinelPorts[0], 'SENTINEL', 'get-master-addr-by-name', SENTINEL_NAME));
    return Number(port);
  }
}
