/**
 * Real processes for the resilience tests: training workers
 * (`node dist/workers/worker.js`) and a private redis-server on its own port
 * with its append-only file in a directory of its own; and the weights an
 * uninterrupted run ends with, to compare a resumed job against.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../../src/config.js';
import { resolveSpec } from '../../src/core/spec.js';
import { train } from '../../src/core/train.js';
import { loadBuiltinDataset } from '../../src/datasets/index.js';
import { redisAnswers } from '../../src/store/local-redis.js';

const WORKER = path.resolve(import.meta.dirname, '../../dist/workers/worker.js');

export interface Proc {
  child: ChildProcess;
  /** Everything it printed so far. */
  output(): string;
  /** Resolves with the exit code (or the signal's name). */
  exited: Promise<number | string>;
}

function track(child: ChildProcess): Proc {
  let output = '';
  child.stdout?.on('data', (d) => { output += d; });
  child.stderr?.on('data', (d) => { output += d; });
  const exited = once(child, 'exit').then(([code, signal]) => (code ?? signal) as number | string);
  return { child, output: () => output, exited };
}

/** A worker process on the stack's Redis and prefix; resolves once it logged that it started. */
export async function startWorkerProcess(config: Config, env: Record<string, string> = {}): Promise<Proc> {
  const proc = track(spawn(process.execPath, [WORKER], {
    env: {
      ...process.env, REDIS_URL: config.redisUrl, NORMLAB_PREFIX: config.prefix, WORKER_CONCURRENCY: '1',
      LOG_LEVEL: 'info', PROGRESS_INTERVAL_MS: '50', ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  }));
  await until(() => proc.output().includes('training worker started') || proc.child.exitCode !== null, 20_000);
  if (proc.child.exitCode !== null) throw new Error(`worker exited at start:\n${proc.output()}`);
  return proc;
}

export function stopProcess(proc: Proc | undefined): Promise<unknown> {
  if (!proc || proc.child.exitCode !== null || proc.child.signalCode !== null) return Promise.resolve();
  proc.child.kill('SIGKILL');
  return proc.exited;
}

export async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  await new Promise((r) => server.close(r));
  return port;
}

/** A redis-server of its own: append-only, every write fsynced, so a kill -9 loses nothing acknowledged. */
export class PrivateRedis {
  readonly dir = mkdtempSync(path.join(os.tmpdir(), 'normlab-redis-'));
  private proc: Proc | null = null;

  /** `args`: more redis-server options, e.g. ['--maxclients', '40']. */
  constructor(readonly port: number, private readonly args: string[] = []) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    this.proc = track(spawn('redis-server', [
      '--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir,
      '--appendonly', 'yes', '--appendfsync', 'always', '--save', '', '--daemonize', 'no', ...this.args,
    ], { stdio: ['ignore', 'pipe', 'pipe'] }));
    await until(async () => redisAnswers('127.0.0.1', this.port), 10_000);
  }

  async kill(): Promise<void> {
    await stopProcess(this.proc ?? undefined);
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Poll `condition` every 20 ms until it holds; throws after `timeoutMs`. */
export async function until(condition: () => boolean | Promise<boolean>, timeoutMs: number, what = 'a condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** SHA-256 of the weights an uninterrupted in-process run of `spec` ends with. */
export async function referenceWeights(spec: unknown): Promise<string> {
  const resolved = resolveSpec(spec);
  const result = await train(resolved, await loadBuiltinDataset(resolved.dataset, resolved.training.seed));
  return sha256(result.artifact.weights);
}

/** SHA-256 of a model's weights as the API serves them. */
export async function servedWeights(base: string, id: string, key?: string): Promise<string> {
  const res = await fetch(`${base}/models/${id}/weights`, { headers: key ? { authorization: `Bearer ${key}` } : {} });
  if (res.status !== 200) throw new Error(`weights: HTTP ${res.status}`);
  return sha256(new Uint8Array(await res.arrayBuffer()));
}
