/**
 * CSV uploads are parsed as a stream (csv-parse), so a 30 MB upload never
 * holds the event loop; `Content-Encoding: gzip` is accepted (a .csv.gz),
 * other encodings are 415; the quota counts what is stored.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { OPEN_TENANT } from '../../src/server/plugins/auth.js';
import { api, startStack, type Stack } from './helpers.js';
import { healthLatency } from './latency.js';

let stack: Stack;
const dir = mkdtempSync(path.join(os.tmpdir(), 'normlab-uploads-'));
beforeAll(async () => {
  stack = await startStack('uploads', { config: { rateLimitMax: 0 } });
});
afterAll(async () => {
  await stack?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function upload(body: Buffer | string, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(`${stack.base}/datasets`, { method: 'POST', headers: { 'content-type': 'text/csv', ...headers }, body: typeof body === 'string' ? body : new Uint8Array(body) });
  return { status: res.status, body: await res.json() };
}

/** A CSV of `rows` rows and 20 features. */
function bigCsv(rows: number): string {
  const header = [...Array.from({ length: 20 }, (_, j) => `f${j}`), 'label'].join(',');
  const lines = [header];
  for (let i = 0; i < rows; i++) {
    const values = Array.from({ length: 20 }, (_, j) => ((i * 7 + j * 13) % 1000 / 7).toFixed(4));
    lines.push(`${values.join(',')},${i % 3 ? 'cat' : 'dog'}`);
  }
  return lines.join('\n') + '\n';
}

/** curl in its own process, so the client's work is not on the API's event loop. */
function curlUpload(file: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const child = spawn('curl', ['-s', '-w', '\n%{http_code}', '-H', 'content-type: text/csv', '--data-binary', `@${file}`, `${stack.base}/datasets`]);
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.on('error', reject);
    child.on('exit', () => {
      const cut = out.lastIndexOf('\n');
      resolve({ status: Number(out.slice(cut + 1)), body: JSON.parse(out.slice(0, cut)) });
    });
  });
}

it('keeps health checks fast while a 30 MB CSV uploads and parses', async () => {
  const text = bigCsv(190_000);
  expect(text.length).toBeGreaterThan(30_000_000);
  const file = path.join(dir, 'big.csv');
  writeFileSync(file, text);
  let res: { status: number; body: any } | undefined;
  const latency = await healthLatency(stack.base, async () => { res = await curlUpload(file); });
  expect(res!.status, JSON.stringify(res!.body)).toBe(201);
  expect(res!.body).toMatchObject({ rows: 190_000, features: 20, classes: 2 });
  expect(latency.samples).toBeGreaterThan(20);
  // The goal is 50 ms (bench/event-loop.mjs); the bound leaves room for other work on a shared machine.
  expect(latency.p99, JSON.stringify(latency)).toBeLessThan(150);
  console.log(`health during a ${(text.length / 1e6).toFixed(1)} MB upload: ${JSON.stringify(latency)}`);
}, 120_000);

it('names the line of an error deep in a large upload', async () => {
  const lines = bigCsv(120_000).split('\n');
  lines[100_000] = '1,2,3';
  const res = await upload(lines.join('\n'));
  expect(res.status).toBe(400);
  expect(res.body.error).toMatchObject({ code: 'CSV_INVALID', details: { line: 100_001 } });
  expect(res.body.error.message).toBe('line 100001: expected 21 fields like the header, found 3');
});

it('accepts a gzip upload (Content-Encoding: gzip) as the same dataset', async () => {
  const text = 'a,b,label\n1,2,x\n3,4,y\n5,6,x\n';
  const plain = await upload(text);
  const gzipped = await upload(gzipSync(text), { 'content-encoding': 'gzip' });
  expect(gzipped.status, JSON.stringify(gzipped.body)).toBe(201);
  const { id: _a, ...plainRest } = plain.body;
  const { id: _b, ...gzRest } = gzipped.body;
  expect(gzRest).toEqual(plainRest);
});

it('refuses encodings it does not decode with 415, and broken gzip with 400', async () => {
  for (const encoding of ['br', 'deflate', 'compress', 'gzip, br']) {
    const res = await upload('a,b,label\n1,2,x\n3,4,y\n', { 'content-encoding': encoding });
    expect(res.status, encoding).toBe(415);
    expect(res.body.error).toMatchObject({ code: 'UNSUPPORTED_CONTENT_ENCODING', details: { header: 'content-encoding', supported: ['identity', 'gzip'] } });
  }
  const json = await fetch(`${stack.base}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: gzipSync('{}') });
  expect(json.status).toBe(415);
  const broken = await upload(Buffer.from('not gzip at all'), { 'content-encoding': 'gzip' });
  expect(broken.status).toBe(400);
  expect(broken.body.error.code).toBe('CSV_INVALID');
});

it('refuses a gzip upload whose CSV is over DATASET_MAX_BYTES', async () => {
  const bomb = gzipSync(Buffer.concat([Buffer.from('a,b,label\n1,2,'), Buffer.alloc(stack.config.datasetMaxBytes, 'x')]));
  expect(bomb.length).toBeLessThan(1_000_000);
  const res = await upload(bomb, { 'content-encoding': 'gzip' });
  expect(res.status).toBe(413);
  expect(res.body.error).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', details: { setting: 'DATASET_MAX_BYTES' } });
});

it('counts what is stored against the quota, not the CSV size', async () => {
  const { services } = stack.app;
  const before = Number(await services.redis.hget(services.keys.usage(OPEN_TENANT), 'datasetBytes'));
  const text = bigCsv(60_000);
  const res = await upload(text);
  expect(res.status).toBe(201);
  const key = services.keys.dataset(OPEN_TENANT, res.body.id);
  const stored = (await services.redis.hstrlen(key, 'data')) + (await services.redis.hstrlen(key, 'summary'));
  const used = Number(await services.redis.hget(services.keys.usage(OPEN_TENANT), 'datasetBytes'));
  expect(used - before).toBe(res.body.bytes);
  expect(res.body.bytes).toBeGreaterThanOrEqual(stored);
  expect(res.body.bytes - stored).toBeLessThan(32);
  expect((await api(stack.base, 'DELETE', `/datasets/${res.body.id}`)).status).toBe(204);
  expect(Number(await services.redis.hget(services.keys.usage(OPEN_TENANT), 'datasetBytes'))).toBe(before);
}, 60_000);
