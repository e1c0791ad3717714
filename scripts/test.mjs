// Runs the whole vitest suite and ends with one plain line "N passed, N failed"
// (read from vitest's JSON report), so a run that executed no test shows 0 passed.
import { spawnSync } from 'node:child_process';
import { readFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const report = path.join(root, 'test-results', 'vitest.json');
mkdirSync(path.dirname(report), { recursive: true });
const vitest = path.join(root, 'node_modules', 'vitest', 'vitest.mjs');
const run = spawnSync(
  process.execPath,
  [vitest, 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...process.argv.slice(2)],
  { stdio: 'inherit', cwd: root },
);
let passed = 0;
let failed = 0;
/** Skipped tests that need an optional package (tagged "[needs apt PKG]", see test/helpers/optional.ts), by package. */
const needs = new Map();
try {
  const json = JSON.parse(readFileSync(report, 'utf8'));
  passed = json.numPassedTests;
  failed = json.numFailedTests;
  // A file that failed to load, or whose beforeAll failed (its tests then show as skipped),
  // has no failed test but must still count as a failure.
  failed += json.testResults.filter((f) => f.status === 'failed' && !f.assertionResults.some((a) => a.status === 'failed')).length;
  for (const file of json.testResults) {
    for (const t of file.assertionResults) {
      const pkg = /\[needs apt ([\w.+-]+)\]/.exec(t.fullName)?.[1];
      if (pkg && (t.status === 'skipped' || t.status === 'pending')) needs.set(pkg, [...(needs.get(pkg) ?? []), t.fullName]);
    }
  }
} catch {
  failed += 1;
}
if (needs.size > 0) {
  const ci = process.env.CI === 'true';
  console.log(`\n${ci ? 'FAILED (CI=true allows no skip): ' : ''}skipped tests that need an optional Debian package:`);
  for (const [pkg, names] of needs) console.log(`  ${pkg}: ${names.length} test(s), e.g. "${names[0]}"`);
  console.log(`run them with: apt-get install -y ${[...needs.keys()].join(' ')}`);
  if (ci) failed += [...needs.values()].reduce((sum, names) => sum + names.length, 0);
}
// Vitest also fails a run for what no test reports (an unhandled error, a hook that timed out): count it too.
if (run.status !== 0 && failed === 0) {
  console.log(`vitest exited with status ${run.status} although no test failed (an unhandled error or a failed hook, above); counted as 1 failure`);
  failed = 1;
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(run.status === 0 && failed === 0 && passed > 0 ? 0 : 1);
