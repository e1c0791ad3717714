/** The summary as a Markdown table plus one verdict per line (the CLI prints it; the README quotes it). */
import type { Stats } from './stats.js';
import type { Summary } from './summary.js';

const num = (x: number | null, digits: number) => (x === null ? '–' : x.toFixed(digits));

function meanSd(s: Stats, digits: number): string {
  if (s.n === 0) return '–';
  return s.sd === null ? num(s.mean, digits) : `${num(s.mean, digits)} ± ${num(s.sd, digits)}`;
}

function withCi(s: Stats, digits: number): string {
  return s.ci95 ? `${meanSd(s, digits)} [${num(s.ci95[0], digits)}, ${num(s.ci95[1], digits)}]` : meanSd(s, digits);
}

export function summaryTable(summary: Summary): string {
  const target = summary.target;
  const head = ['variant', 'runs ok / failed (diverged)', ...(target ? [`epochs to ${target.metric} ${target.value} (seeds reaching)`] : []),
    'best val acc', 'final val acc (95% CI)', 'final test acc', 'gap (batch − frozen acc)', 'training s'];
  const rows = summary.variants.map((v) => [
    v.label || `variant ${v.index}`,
    `${v.counts.succeeded} / ${v.counts.failed} (${v.diverged})`,
    ...(v.epochsToTarget ? [`${meanSd(v.epochsToTarget.stats, 1)} (${v.epochsToTarget.reached} of ${v.epochsToTarget.runs})`] : []),
    meanSd(v.bestValAccuracy, 3),
    withCi(v.finalValAccuracy, 3),
    meanSd(v.finalTestAccuracy, 3),
    meanSd(v.gap, 3),
    meanSd(v.trainingSeconds, 2),
  ]);
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  const table = [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n');
  const verdicts = summary.variants.filter((v) => v.comparison).map((v) => `- ${v.verdict}`).join('\n');
  return verdicts ? `${table}\n\n${verdicts}` : table;
}
