/**
 * The `normlab` CLI as a user runs it: --help everywhere, one-line errors for
 * mistakes (never a stack), the client commands against a real server
 * (submit --watch reconnecting with Last-Event-ID through a proxy that drops
 * the stream, jobs, status, cancel, predict), and `export --onnx`.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InferenceModel } from '../../src/core/inference.js';
import { api, readEvents, startStack, submit, TINY_SPEC, type Stack } from '../api/helpers.js';
import { expectClose } from '../helpers/gradcheck.js';

const cli = path.resolve(import.meta.dirname, '../../bin/normlab.js');
const dir = mkdtempSync(path.join(tmpdir(), 'normlab-cli-client-'));
const KEY = 'cli-key-0123456789abcdefgh';

interface Run { code: number; stdout: string; stderr: string }
function normlab(args: string[], env: Record<string, string> = {}, input?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [cli, ...args], { cwd: dir, env: { ...process.env, ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}
const noStack = (r: Run) => expect(`${r.stdout}${r.stderr}`).not.toMatch(/^\s+at .+\(.*:\d+:\d+\)$|^\s+at .+:\d+:\d+$/m);

let stack: Stack;
let env: Record<string, string>;
let root: string;
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await stack?.close();
});

describe('help and mistakes', () => {
  const commands = ['train', 'doctor', 'export', 'experiment', 'submit', 'watch', 'jobs', 'status', 'cancel', 'predict'];
  it('--help works on every command', async () => {
    for (const c of commands) {
      const r = await normlab([c, '--help']);
      expect(r.code, c).toBe(0);
      expect(r.stdout).toContain(`Usage: normlab ${c}`);
    }
    const top = await normlab(['--help']);
    for (const c of commands) expect(top.stdout).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
  });

  it('a mistake prints one line and exits non-zero, without a stack trace', async () => {
    const cases: Array<[string[], Record<string, string>, RegExp]> = [
      [['train', '--bogus'], {}, /unknown option '--bogus'/],
      [['train'], {}, /missing required argument 'SPEC.json'/],
      [['train', 'missing.json'], {}, /normlab: ENOENT: no such file or directory, open 'missing.json'/],
      [['export', 'nowhere', '--onnx', 'x.onnx'], {}, /normlab: nowhere is not a model directory/],
      [['export', 'nowhere'], {}, /required option '--onnx <FILE>' not specified/],
      [['jobs', '--status', 'done'], {}, /argument 'done' is invalid. Allowed choices are queued, running/],
      [['jobs'], { NORMLAB_URL: 'ftp://example' }, /NORMLAB_URL=ftp:\/\/example: expected an http/],
      [['status', 'job_x'], { NORMLAB_URL: 'http://127.0.0.1:9' }, /cannot reach the NormLab API at http:\/\/127.0.0.1:9 \(set NORMLAB_URL\)/],
      [['nothing'], {}, /unknown command 'nothing'/],
    ];
    for (const [args, extra, message] of cases) {
      const r = await normlab(args, extra);
      expect(r.code, args.join(' ')).not.toBe(0);
      expect(r.stderr, args.join(' ')).toMatch(message);
      noStack(r);
    }
  });
});

describe('against a server', () => {
  beforeAll(async () => {
    stack = await startStack('cli', { worker: true, config: { apiKeys: [{ key: KEY, tenant: 'cli' }], rateLimitMax: 0 } });
    root = stack.base.replace(/\/v1$/, '');
    env = { NORMLAB_URL: root, NORMLAB_API_KEY: KEY };
  });

  it('submit --watch follows the job to completed; jobs and status show it; predict reads CSV from stdin', async () => {
    const spec = path.join(dir, 'spec.json');
    writeFileSync(spec, JSON.stringify(TINY_SPEC));
    const r = await normlab(['submit', spec, '--watch', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const [id, ...lines] = r.stdout.trim().split('\n');
    expect(id).toMatch(/^job_/);
    const events = lines.map((l) => JSON.parse(l));
    expect(events.filter((e) => e.type === 'epoch').map((e) => e.epoch)).toEqual([1, 2, 3]);
    expect(events.at(-1)).toMatchObject({ type: 'completed', modelId: id });

    expect((await normlab(['jobs'], env)).stdout).toMatch(new RegExp(`^${id}  succeeded`, 'm'));
    expect(JSON.parse((await normlab(['status', id!], env)).stdout)).toMatchObject({ id, status: 'succeeded', modelId: id });

    const rows = [[0.5, -0.25], [1, 2], [-2, 0.125]];
    const p = await normlab(['predict', id!, '-', '--batch', '2'], env, `x,y\n${rows.map((row) => row.join(',')).join('\n')}\n`);
    expect(p.code, p.stderr).toBe(0);
    const v1 = (await api(stack.base, 'POST', `/models/${id}/predict`, { instances: rows }, KEY)).body.predictions;
    const classNames = (await api(stack.base, 'GET', `/models/${id}`, undefined, KEY)).body.classNames;
    expect(p.stdout.trim().split('\n')).toEqual([`label,${classNames.join(',')}`, ...v1.map((q: any) => [q.label, ...q.probabilities].join(','))]);
  });

  it('watch reconnects with Last-Event-ID when the stream drops, and prints every event once', async () => {
    const id = await submit(stack.base, { ...TINY_SPEC, training: { epochs: 4 } }, KEY);
    const seen: Array<string | undefined> = [];
    let dropped = false;
    // A proxy in front of the API that cuts the first event stream right after its first epoch event.
    const proxy = http.createServer((req, res) => {
      const events = req.url!.endsWith('/events');
      if (events) seen.push(req.headers['last-event-id'] as string | undefined);
      const up = http.request(`${root}${req.url}`, { method: req.method, headers: req.headers }, (upRes) => {
        res.writeHead(upRes.statusCode!, upRes.headers);
        upRes.on('data', (chunk: Buffer) => {
          if (res.writableEnded) return; // chunks already read when the stream was cut
          const text = chunk.toString();
          const epoch = events && !dropped ? text.indexOf('event: epoch') : -1;
          if (epoch < 0) return void res.write(chunk);
          // Pass the stream on up to the end of that epoch event, then hang up.
          dropped = true;
          upRes.destroy();
          res.end(text.slice(0, text.indexOf('\n\n', epoch) + 2));
        });
        upRes.on('end', () => res.end());
        upRes.on('error', () => res.end());
        upRes.on('close', () => res.end());
      });
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const r = await normlab(['watch', id, '--json'], { ...env, NORMLAB_URL: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}` });
      expect(r.code, r.stderr).toBe(0);
      expect(dropped).toBe(true);
      expect(seen.length).toBeGreaterThanOrEqual(2);
      expect(seen[0]).toBeUndefined();
      expect(seen[1]).toMatch(/^\d+-\d+$/); // the id of the last event received before the drop
      expect(r.stderr).toMatch(/event stream interrupted; reconnecting after event \d+-\d+/);
      const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
      expect(events.filter((e) => e.type === 'epoch').map((e) => e.epoch)).toEqual([1, 2, 3, 4]);
      expect(events.filter((e) => e.type === 'completed')).toHaveLength(1);
    } finally {
      proxy.closeAllConnections();
      await new Promise((r) => proxy.close(r));
    }
  }, 60_000);

  it('cancel stops a running job; API errors are one line naming the fix', async () => {
    const id = await submit(stack.base, { ...TINY_SPEC, dataset: { id: 'spirals', size: 4000 }, training: { epochs: 500, batchSize: 16 } }, KEY);
    await readEvents(stack.base, id, { key: KEY, until: (e) => e.event === 'progress' });
    const c = await normlab(['cancel', id], env);
    expect(c.code, c.stderr).toBe(0);
    expect(c.stdout).toMatch(new RegExp(`^${id} (cancelled|is stopping)`));
    expect((await readEvents(stack.base, id, { key: KEY })).at(-1)!.event).toBe('cancelled');
    const again = await normlab(['cancel', id], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/^normlab: JOB_FINISHED: job \S+ already ended cancelled/);
    const noKey = await normlab(['jobs'], { NORMLAB_URL: root, NORMLAB_API_KEY: '' });
    expect(noKey.stderr).toMatch(/UNAUTHORIZED: .*\(set NORMLAB_API_KEY\)/);
    const missing = await normlab(['watch', 'job_000000000000000000000'], env);
    expect(missing.stderr).toMatch(/JOB_NOT_FOUND/);
    for (const r of [again, noKey, missing]) noStack(r);
  }, 60_000);
});

describe('normlab export', () => {
  it('writes an ONNX file that onnxruntime-node runs like the model', async () => {
    const spec = path.join(dir, 'export-spec.json');
    writeFileSync(spec, JSON.stringify({ dataset: { id: 'moons', size: 300, preprocess: 'standardize' }, model: { hidden: [8], batchNorm: 'before' }, training: { epochs: 2 } }));
    const out = path.join(dir, 'model');
    expect((await normlab(['train', spec, '--out', out])).code).toBe(0);
    const file = path.join(dir, 'model.onnx');
    const r = await normlab(['export', out, '--onnx', file]);
    expect(r.code, r.stderr).toBe(0);
    const model = InferenceModel.fromArtifact({ manifest: JSON.parse(readFileSync(path.join(out, 'manifest.json'), 'utf8')), weights: readFileSync(path.join(out, 'model.safetensors')) });
    const x = Float32Array.of(0.5, 0.25, -1, 2);
    const session = await ort.InferenceSession.create(readFileSync(file));
    const got = await session.run({ input: new ort.Tensor('float32', x, [2, 2]) });
    expectClose(got.probabilities!.data as Float32Array, model.predict(x, 2), { rtol: 0, atol: 1e-5 }, 'onnx vs predict');
  });
});
