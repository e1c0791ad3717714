// Screenshots of the dashboard's four pages for docs/ (the README shows them), taken with Debian's
// chromium against a running server:
//   node test/browser/screenshots.mjs http://127.0.0.1:3000 JOB_ID [EXPERIMENT_ID]
// JOB_ID: a finished Fashion-MNIST job (its model gives the model page); EXPERIMENT_ID: a finished
// experiment. Fails on any console error, page error or failed request.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const [origin, jobId, experimentId] = process.argv.slice(2);
if (!origin || !jobId) {
  console.error('usage: node test/browser/screenshots.mjs ORIGIN JOB_ID [EXPERIMENT_ID]');
  process.exit(2);
}
const docs = path.resolve(import.meta.dirname, '../../docs');
mkdirSync(docs, { recursive: true });
const profile = mkdtempSync(path.join(os.tmpdir(), 'normlab-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
const problems = [];
const page = await context.newPage();
page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
page.on('requestfailed', (r) => {
  if (!(r.url().endsWith('/events') && r.failure()?.errorText === 'net::ERR_ABORTED')) problems.push(`failed: ${r.url()} ${r.failure()?.errorText}`);
});
page.on('response', (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`); });

async function shoot(url, file, ready) {
  await page.goto(origin + url);
  await page.locator(ready).first().waitFor({ timeout: 60_000 });
  await page.waitForTimeout(800); // the last animation frame and the legend
  await page.screenshot({ path: path.join(docs, file), fullPage: true });
  console.log(`wrote docs/${file}`);
}

try {
  await shoot('/', 'dashboard-home.png', '#jobs-table');
  await shoot(`/jobs/${jobId}`, 'dashboard-job.png', '#final-metrics');
  await shoot(`/models/${jobId}`, 'dashboard-model.png', '#images figure');
  if (experimentId) await shoot(`/experiments/${experimentId}`, 'dashboard-experiment.png', '#summary-table');
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
if (problems.length > 0) {
  console.error(problems.join('\n'));
  process.exit(1);
}
