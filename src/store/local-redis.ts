/**
 * `npm start` without REDIS_URL: use 127.0.0.1:6379 when it answers, else run
 * a private redis-server (append-only, data in REDIS_DATA_DIR) on a free port
 * for the life of the process. Its port is kept in the data directory so a
 * server left running by a killed process is reused, never doubled.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export class NoRedisError extends Error {
  constructor(port: number) {
    super(
      `NormLab needs Redis: nothing answers at 127.0.0.1:${port} and there is no redis-server on the PATH.\n` +
      'Get one of:\n' +
      '  - Debian/Ubuntu: sudo apt-get install redis-server   (then run npm start again)\n' +
      '  - Docker:        docker compose up -d redis\n' +
      '  - any Redis ≥ 6.2: REDIS_URL=redis://host:6379 npm start',
    );
    this.name = 'NoRedisError';
  }
}

/** True when a Redis server answers PING at host:port within timeoutMs. */
export function redisAnswers(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => { socket.destroy(); resolve(ok); };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface LocalRedis {
  url: string;
  /** How it was found: the default local port, a reused private server, or one started now. */
  origin: 'default' | 'reused' | 'started';
  stop(): Promise<void>;
}

/** `defaultPort` is the port tried first (6379; tests pass another). */
export async function localRedis(dataDir: string, defaultPort = 6379): Promise<LocalRedis> {
  const none = async () => {};
  if (await redisAnswers('127.0.0.1', defaultPort)) return { url: `redis://127.0.0.1:${defaultPort}`, origin: 'default', stop: none };

  const dir = path.resolve(dataDir);
  const portFile = path.join(dir, 'port');
  const previous = Number(readOr(portFile, '0'));
  if (previous > 0 && (await redisAnswers('127.0.0.1', previous))) {
    return { url: `redis://127.0.0.1:${previous}`, origin: 'reused', stop: none };
  }

  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const child = spawn('redis-server', [
    '--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
    '--appendonly', 'yes', '--save', '', '--daemonize', 'no',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-4000); });
  child.stderr!.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-4000); });
  const spawned = await new Promise<boolean>((resolve) => {
    child.once('spawn', () => resolve(true));
    child.once('error', () => resolve(false));
  });
  if (!spawned) throw new NoRedisError(defaultPort);

  for (let waited = 0; !(await redisAnswers('127.0.0.1', port)); waited += 100) {
    if (child.exitCode !== null || waited > 10_000) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not start:\n${output}`);
    }
    await sleep(100);
  }
  writeFileSync(portFile, String(port));
  return { url: `redis://127.0.0.1:${port}`, origin: 'started', stop: () => stopChild(child) };
}

function readOr(file: string, fallback: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return fallback;
  }
}

/** SIGTERM makes Redis flush its append-only file and exit. */
async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}
