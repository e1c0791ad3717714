/**
 * Prometheus text exposition read by a real parser: the official Python
 * client's (test/helpers/parse_prometheus.py, Debian python3-prometheus-client).
 * A counter's family name is without `_total`; its samples keep it.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface PromSample { name: string; labels: Record<string, string>; value: number | string }
export interface PromFamily { name: string; type: string; help: string; samples: PromSample[] }

const SCRIPT = fileURLToPath(new URL('./parse_prometheus.py', import.meta.url));

export function parseExposition(text: string): PromFamily[] {
  const run = spawnSync('/usr/bin/python3', [SCRIPT], { input: text, encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`the exposition did not parse: ${run.stderr.trim().split('\n').at(-1)}`);
  return JSON.parse(run.stdout) as PromFamily[];
}

/** The value of the sample named `name` whose labels include `labels` (undefined: none). */
export function sampleValue(families: PromFamily[], name: string, labels: Record<string, string> = {}): number | undefined {
  for (const f of families) {
    for (const s of f.samples) {
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return Number(s.value);
    }
  }
  return undefined;
}
