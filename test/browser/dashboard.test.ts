/**
 * The dashboard in a real browser (Debian's chromium driven by playwright-core; nothing downloads a
 * browser) against a real API, Redis and training worker: submit a job through the form and watch
 * its curves grow, open its model page (test images with predictions) and an experiment page; a
 * server with API keys asks for one and keeps it out of URLs.
 * Any console error, page error, failed request or HTTP error fails the test. Screenshots go to
 * test-results/.
 */
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fashionMnistAvailable } from '../../src/datasets/fashion-mnist.js';
import { api, startStack, submit, waitFor, type Stack } from '../api/helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = path.resolve(import.meta.dirname, '../../test-results');
const inCi = process.env.CI === 'true';
const missing = [
  ...(existsSync(CHROMIUM) ? [] : ['chromium']),
  ...(fashionMnistAvailable() ? [] : ['dataset-fashion-mnist']),
];
const skip = missing.length > 0 && !inCi;
if (skip) console.warn(`browser tests skipped: run \`apt-get install ${missing.join(' ')}\` to run them (with CI=true they always run)`);

/** A fresh profile per test, the flags that keep chromium from calling home. */
async function launch(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const profile = mkdtempSync(path.join(os.tmpdir(), 'normlab-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  return { context, async close() { await context.close(); rmSync(profile, { recursive: true, force: true }); } };
}

interface Allowed {
  status?: (status: number, url: string) => boolean;
  failed?: (url: string, errorText: string) => boolean;
  console?: (text: string) => boolean;
}

/** Everything that went wrong in the page: console errors, uncaught errors, failed requests, HTTP errors. */
function watch(page: Page, allowed: Allowed = {}) {
  const problems: string[] = [];
  const urls: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error' && !allowed.console?.(m.text())) problems.push(`console: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('request', (r) => urls.push(r.url()));
  page.on('requestfailed', (r) => {
    const text = r.failure()?.errorText ?? '';
    if (!allowed.failed?.(r.url(), text)) problems.push(`request failed: ${r.method()} ${r.url()} ${text}`);
  });
  page.on('response', (r) => { if (r.status() >= 400 && !allowed.status?.(r.status(), r.url())) problems.push(`HTTP ${r.status()}: ${r.url()}`); });
  return { problems, urls };
}

/** Leaving a page aborts its open event stream; that is not a failure. */
const leftStream = (url: string, errorText: string) => url.endsWith('/events') && errorText === 'net::ERR_ABORTED';

/** Collects the durations of main-thread tasks over 50 ms (the browser's long tasks) into window.longTasks. */
function recordLongTasks() {
  const w = window as unknown as { longTasks: number[] };
  w.longTasks = [];
  new PerformanceObserver((list) => { for (const e of list.getEntries()) w.longTasks.push(e.duration); }).observe({ type: 'longtask', buffered: true });
}

/**
 * A reverse proxy to the API that ends the first event stream cleanly after `events` events (as a
 * restarting server does), and records the Last-Event-ID of every event-stream request.
 */
async function cuttingProxy(target: URL, events: number) {
  const streams: { lastEventId: string | undefined }[] = [];
  let cutAfterId: string | undefined;
  const server = http.createServer((req, res) => {
    const isStream = /\/events$/.test(req.url ?? '');
    const first = isStream && streams.length === 0;
    if (isStream) streams.push({ lastEventId: req.headers['last-event-id'] as string | undefined });
    const upstream = http.request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      if (!first) return up.pipe(res);
      let text = '';
      let seen = 0;
      up.setEncoding('utf8');
      up.on('data', (chunk: string) => {
        if (res.writableEnded) return;
        text += chunk;
        let cut: number;
        while ((cut = text.indexOf('\n\n')) >= 0) {
          const block = text.slice(0, cut + 2);
          text = text.slice(cut + 2);
          res.write(block);
          const id = /^id: (.+)$/m.exec(block)?.[1];
          if (id && ++seen === events) {
            cutAfterId = id;
            res.end();
            up.destroy();
            return;
          }
        }
      });
      up.on('end', () => { if (!res.writableEnded) res.end(); });
    });
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    streams,
    get cutAfterId() { return cutAfterId; },
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}

/** The number of x values a chart has drawn (its data-points attribute). */
const points = (page: Page, chart: string) =>
  page.locator(`[data-chart="${chart}"]`).first().getAttribute('data-points').then((v) => Number(v ?? 0));

describe.skipIf(skip)('dashboard in chromium', () => {
  let stack: Stack;
  let origin: string;

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    stack = await startStack('browser', { worker: true, config: { workerConcurrency: 1, rateLimitMax: 0 } });
    origin = stack.base.replace(/\/v1$/, '');
  });
  afterAll(async () => stack?.close());

  it('submits a job through the form, its curves grow with each epoch, its model page predicts test images', async () => {
    const browser = await launch();
    try {
      const page = await browser.context.newPage();
      const { problems } = watch(page, { failed: leftStream });
      let pageBytes = 0;
      page.on('response', async (r) => {
        if (new URL(r.url()).pathname.startsWith('/v1/')) return;
        pageBytes += (await r.body().catch(() => Buffer.alloc(0))).length;
      });

      await page.goto(`${origin}/`);
      const form = page.locator('#new-job');
      await form.locator('select[name=dataset]').selectOption('fashion-mnist');
      await form.locator('input[name=name]').fill('browser test');
      await form.locator('input[name=limit]').fill('6000');
      await form.locator('input[name=hidden]').fill('128, 128');
      await form.locator('select[name=batchNorm]').selectOption('before');
      await form.locator('input[name=dropout]').fill('0.1');
      await form.locator('input[name=epochs]').fill('16');
      await form.locator('input[name=batchSize]').fill('32');
      const preview = JSON.parse(await page.locator('#spec-preview').textContent() ?? '{}');
      expect(preview).toMatchObject({
        name: 'browser test', dataset: { id: 'fashion-mnist', limit: 6000 },
        model: { architecture: 'mlp', hidden: [128, 128], batchNorm: 'before', dropout: 0.1 }, training: { epochs: 16, batchSize: 32 },
      });
      await page.locator('#submit-job').click();
      await page.waitForURL(/\/jobs\/job_/);
      const jobId = new URL(page.url()).pathname.split('/').pop()!;
      expect((await api(stack.base, 'GET', `/jobs/${jobId}`)).body.spec).toMatchObject(preview);

      // The loss chart's series length, sampled while the job trains, goes up in steps to 16.
      const seen: number[] = [];
      const deadline = Date.now() + 90_000;
      while (Date.now() < deadline) {
        const n = await points(page, 'loss');
        if (seen.at(-1) !== n) seen.push(n);
        if (n === 16) break;
        await page.waitForTimeout(40);
      }
      expect(seen.at(-1)).toBe(16);
      expect(seen.filter((n) => n > 0 && n < 16).length, `series lengths seen: ${seen.join(', ')}`).toBeGreaterThan(0);
      for (let i = 1; i < seen.length; i++) expect(seen[i]).toBeGreaterThan(seen[i - 1]!);
      expect(await points(page, 'accuracy')).toBe(16);
      await page.locator('#job-status [data-status=succeeded]').waitFor();
      await page.locator('#final-metrics').waitFor();
      expect(await page.locator('[data-chart="bn-1-mean"]').count()).toBe(1);
      // The BN diagnostics: the gap per epoch, the dropout warning, the per-channel charts.
      expect(await points(page, 'gap')).toBe(16);
      await page.locator('#warnings [data-code="BN_WITH_DROPOUT"]').waitFor();
      await page.locator('[data-chart="bn-1-channel-mean"]').waitFor();
      expect(await points(page, 'bn-1-channel-mean')).toBe(128);
      await page.screenshot({ path: path.join(SHOTS, 'dashboard-job.png'), fullPage: true });
      console.log(JSON.stringify({ bench: 'dashboard-page-bytes', jobPage: pageBytes }));
      expect(pageBytes, 'bytes of the page, its scripts and styles').toBeLessThan(300 * 1024);

      await page.locator('#model-link').click();
      await page.waitForURL(/\/models\/job_/);
      await page.locator('#images figure').nth(31).waitFor();
      const figures = await page.locator('#images figure').evaluateAll((els) => els.map((el) => ({
        predicted: (el as HTMLElement).dataset.predicted, truth: (el as HTMLElement).dataset.truth, wrong: el.classList.contains('wrong'),
      })));
      expect(figures).toHaveLength(32);
      for (const f of figures) expect(f.wrong).toBe(f.predicted !== f.truth);
      // A model that reached ~80 % test accuracy gets most of 32 test images right.
      expect(figures.filter((f) => !f.wrong).length).toBeGreaterThan(20);
      // The canvas holds the image: not blank.
      const inked = await page.locator('#images canvas').first().evaluate((c) => {
        const d = (c as HTMLCanvasElement).getContext('2d')!.getImageData(0, 0, 28, 28).data;
        let dark = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i]! < 128) dark++;
        return dark;
      });
      expect(inked).toBeGreaterThan(20);
      expect(await page.locator('[data-chart^="frozen-"]').count()).toBe(2);
      await page.locator('#predict-output').waitFor({ state: 'attached' });
      await page.getByRole('button', { name: 'Predict' }).click();
      await page.locator('#predict-output table').waitFor();
      await page.screenshot({ path: path.join(SHOTS, 'dashboard-model.png'), fullPage: true });

      await page.goto(`${origin}/`);
      await page.locator(`#jobs-table [data-job="${jobId}"] [data-status=succeeded]`).waitFor();
      await page.screenshot({ path: path.join(SHOTS, 'dashboard-home.png'), fullPage: true });
      expect(problems).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 180_000);

  it('the form builds a recurrent job: cell, units, direction, sequence steps and the batch-norm modes of a recurrent network', async () => {
    const browser = await launch();
    try {
      const page = await browser.context.newPage();
      const { problems } = watch(page, { failed: leftStream });
      await page.goto(`${origin}/`);
      const form = page.locator('#new-job');
      const bnOptions = () => form.locator('select[name=batchNorm] option').evaluateAll((els) => els.map((el) => (el as HTMLOptionElement).value));
      await form.locator('select[name=batchNorm]').waitFor(); // the form renders once the datasets have loaded
      expect(await bnOptions()).toEqual(['before', 'after', 'input', 'none']);
      await form.locator('select[name=dataset]').selectOption('fashion-mnist');
      await form.locator('select[name=architecture]').selectOption('rnn');
      // Recurrent networks normalize inside their layers: other modes, 'before' gone, the mlp default units swapped.
      expect(await bnOptions()).toEqual(['none', 'sequence', 'recurrent']);
      expect(await form.locator('select[name=batchNorm]').inputValue()).toBe('none');
      expect(await form.locator('input[name=hidden]').inputValue()).toBe('128');
      expect(await form.locator('select[name=activation]').isDisabled()).toBe(true);
      await form.locator('input[name=limit]').fill('600');
      await form.locator('select[name=cell]').selectOption('gru');
      expect(await form.locator('select[name=nonlinearity]').isDisabled()).toBe(true); // the Elman cell's only
      await form.locator('input[name=hidden]').fill('16');
      await form.locator('input[name=bidirectional]').check();
      await form.locator('select[name=batchNorm]').selectOption('sequence');
      await form.locator('input[name=steps]').fill('28');
      await form.locator('input[name=epochs]').fill('2');
      await form.locator('input[name=batchSize]').fill('64');
      const preview = JSON.parse(await page.locator('#spec-preview').textContent() ?? '{}');
      expect(preview).toMatchObject({
        dataset: { id: 'fashion-mnist', limit: 600, sequence: { steps: 28 } },
        model: { architecture: 'rnn', cell: 'gru', hidden: [16], bidirectional: true, batchNorm: 'sequence' },
        training: { epochs: 2, batchSize: 64 },
      });
      expect(preview.model.activation).toBeUndefined();
      expect(preview.model.nonlinearity).toBeUndefined();
      await page.locator('#submit-job').click();
      await page.waitForURL(/\/jobs\/job_/);
      const jobId = new URL(page.url()).pathname.split('/').pop()!;
      expect((await api(stack.base, 'GET', `/jobs/${jobId}`)).body.spec).toMatchObject(preview);
      await page.locator('#job-status [data-status=succeeded]').waitFor({ timeout: 90_000 });
      await page.locator('[data-chart="loss"][data-points="2"]').waitFor();
      // Back to a feed-forward architecture: its modes return, with its default.
      await page.goto(`${origin}/`);
      await form.locator('select[name=architecture]').selectOption('rnn');
      await form.locator('select[name=cell]').selectOption('rnn');
      await form.locator('select[name=nonlinearity]').selectOption('relu');
      const elman = JSON.parse(await page.locator('#spec-preview').textContent() ?? '{}');
      expect(elman.model).toMatchObject({ architecture: 'rnn', cell: 'rnn', nonlinearity: 'relu' });
      await form.locator('select[name=batchNorm]').selectOption('recurrent');
      await form.locator('select[name=architecture]').selectOption('cnn');
      expect(await bnOptions()).toEqual(['before', 'after', 'input', 'none']);
      expect(await form.locator('select[name=batchNorm]').inputValue()).toBe('before');
      const cnn = JSON.parse(await page.locator('#spec-preview').textContent() ?? '{}');
      expect(cnn.dataset.sequence).toBeUndefined();
      expect(cnn.model).toMatchObject({ architecture: 'cnn', batchNorm: 'before' });
      expect(problems).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 150_000);

  it('renders a 1000-epoch job from its event stream in a few redraws', async () => {
    const id = await submit(stack.base, { dataset: { id: 'spirals', size: 100 }, model: { hidden: [4] }, training: { epochs: 1000, batchSize: 64 } });
    await waitFor(stack.base, id, (j) => j.status === 'succeeded', 120_000);
    const browser = await launch();
    try {
      const page = await browser.context.newPage();
      const { problems } = watch(page);
      await page.addInitScript(recordLongTasks);
      const started = Date.now();
      await page.goto(`${origin}/jobs/${id}`);
      await page.waitForFunction(() => document.querySelector('[data-chart=loss]')?.getAttribute('data-points') === '1000', null, { timeout: 30_000 });
      const ms = Date.now() - started;
      const draws = Number(await page.locator('[data-chart=loss]').getAttribute('data-draws'));
      const longTasks = await page.evaluate(() => (window as unknown as { longTasks: number[] }).longTasks);
      console.log(JSON.stringify({ bench: 'dashboard-1000-epochs', msToAllPoints: ms, lossChartDraws: draws, longTasksMs: longTasks.map(Math.round) }));
      // One redraw per animation frame, not one per event: far fewer redraws than epochs.
      expect(draws).toBeLessThan(100);
      // No stall a user would see as a frozen page (wall-clock: generous, since CI machines are shared).
      expect(Math.max(0, ...longTasks)).toBeLessThan(1500);
      expect(problems).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 180_000);

  it('starts an experiment from a template button, and follows 12 runs live on the experiment page', async () => {
    const browser = await launch();
    try {
      const page = await browser.context.newPage();
      const { problems } = watch(page, { failed: leftStream });
      await page.addInitScript(recordLongTasks);

      // The template button submits the template and opens its page; cancelled right away (it trains Fashion-MNIST).
      await page.goto(`${origin}/`);
      await page.locator('#experiments').waitFor();
      await page.locator('button[data-template="bn-epochs"]').click();
      await page.waitForURL(/\/experiments\/exp_/);
      const templateRun = new URL(page.url()).pathname.split('/').pop()!;
      await page.locator('#summary-table tbody tr').nth(1).waitFor();
      expect(await page.locator('#summary-table tbody tr').count()).toBe(2);
      expect((await api(stack.base, 'DELETE', `/experiments/${templateRun}`)).status).toBeLessThan(300);

      // 4 variants × 3 seeds = 12 runs of 40 epochs, streaming while the page is open.
      const created = await api(stack.base, 'POST', '/experiments', {
        name: 'browser grid',
        base: { dataset: { id: 'moons', size: 400, noise: 0.2 }, model: { hidden: [16, 16] }, training: { epochs: 40, batchSize: 32 } },
        grid: { 'model.batchNorm': ['none', 'before'], 'training.optimizer.learningRate': [0.01, 0.1] },
        seeds: [1, 2, 3],
        target: { metric: 'val.accuracy', value: 0.85 },
      });
      expect(created.status).toBe(202);
      expect(created.body.jobs).toBe(12);
      await page.goto(`${origin}/experiments/${created.body.id}`);
      const seen: number[] = [];
      const deadline = Date.now() + 150_000;
      while (Date.now() < deadline) {
        const n = await points(page, 'val.accuracy');
        if (seen.at(-1) !== n) seen.push(n);
        if (n === 40 && await page.locator('#experiment-status [data-status=succeeded]').count() === 1) break;
        await page.waitForTimeout(100);
      }
      expect(seen.at(-1)).toBe(40);
      await page.locator('#experiment-status [data-status=succeeded]').waitFor();
      const rows = page.locator('#summary-table tbody tr');
      await expect.poll(() => rows.count()).toBe(4);
      // Every row has its verdict; the bar chart shows epochs-to-target once a run reached it.
      for (const verdict of await rows.locator('td:last-child').allTextContents()) expect(verdict.length).toBeGreaterThan(10);
      await page.locator('[data-chart="epochs-to-target"]').waitFor();
      // Each metric chart: a curve and a band per variant.
      expect(await page.locator('[data-chart="val.accuracy"] .u-legend .u-series').count()).toBe(1 + 4 * 3);
      const longTasks = await page.evaluate(() => (window as unknown as { longTasks: number[] }).longTasks);
      const draws = Number(await page.locator('[data-chart="val.accuracy"]').getAttribute('data-draws'));
      console.log(JSON.stringify({ bench: 'dashboard-12-runs', seriesLengthsSeen: seen.length, valAccuracyDraws: draws, longTasksMs: longTasks.map(Math.round) }));
      expect(Math.max(0, ...longTasks)).toBeLessThan(1500);
      await page.screenshot({ path: path.join(SHOTS, 'dashboard-experiment.png'), fullPage: true });
      expect(problems).toEqual([]);
    } finally {
      await browser.close();
    }
  }, 240_000);

  it('resumes a dropped event stream after the last event it received, without losing or repeating one', async () => {
    const id = await submit(stack.base, { dataset: { id: 'spirals', size: 300 }, model: { hidden: [8] }, training: { epochs: 30 } });
    const proxy = await cuttingProxy(new URL(origin), 5);
    const browser = await launch();
    try {
      const page = await browser.context.newPage();
      const { problems } = watch(page, { failed: leftStream });
      await page.goto(`${proxy.origin}/jobs/${id}`);
      await page.waitForFunction(() => document.querySelector('[data-chart=loss]')?.getAttribute('data-points') === '30', null, { timeout: 60_000 });
      await page.locator('#job-status [data-status=succeeded]').waitFor();
      expect(proxy.streams.length).toBeGreaterThanOrEqual(2);
      expect(proxy.streams[0]!.lastEventId).toBeUndefined();
      expect(proxy.streams[1]!.lastEventId).toBe(proxy.cutAfterId);
      // Exactly one point per epoch: nothing was replayed twice after the reconnect.
      expect(await points(page, 'loss')).toBe(30);
      expect(problems).toEqual([]);
    } finally {
      await browser.close();
      await proxy.close();
    }
  }, 120_000);

  it('asks for the API key when keys are on and never puts it in a URL', async () => {
    const KEY = 'browser-secret-key-1';
    const keyed = await startStack('browser-keys', { config: { apiKeys: [{ key: KEY, tenant: 'acme' }], rateLimitMax: 0 } });
    const browser = await launch();
    try {
      await submit(keyed.base, { dataset: { id: 'moons', size: 200 }, model: { hidden: [8] }, training: { epochs: 1 } }, KEY);
      const page = await browser.context.newPage();
      // Before the key is entered the API answers 401 (that is how the page learns it needs one).
      const { problems, urls } = watch(page, { status: (status) => status === 401, console: (text) => text.includes('401') });
      await page.goto(keyed.base.replace(/\/v1$/, '/'));
      await page.locator('#key-dialog[open]').waitFor();
      await page.locator('#key-input').fill(KEY);
      await page.locator('#key-dialog button[type=submit]').click();
      await page.locator('#jobs-table tbody tr').first().waitFor();
      expect(await page.evaluate(() => sessionStorage.getItem('normlab.apiKey'))).toBe(KEY);
      expect(urls.filter((u) => u.includes(KEY))).toEqual([]);
      expect(problems).toEqual([]);
    } finally {
      await browser.close();
      await keyed.close();
    }
  }, 120_000);
});
