/**
 * The answer of an experiment: per run, per variant (statistics over its
 * seeds) and against the baseline (epochs-to-target ratio, Welch's t interval
 * of the difference in final accuracy, a verdict sentence). Pure: the service
 * feeds it the children's records, the CLI its in-process results.
 */
import type { Metrics } from '../core/events.js';
import type { Target, Variant } from './grid.js';
import { describe, welch, type Difference, type Stats } from './stats.js';

export type RunStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

/** What the summary needs of one epoch event. */
export interface EpochInput { epoch: number; train: Metrics; val: Metrics | null; test: Metrics | null }

/** What the summary needs of a run: its status, epoch history, final metrics (when it succeeded) and error. */
export interface RunInput {
  jobId: string;
  variant: number;
  seed: number;
  status: RunStatus;
  history: EpochInput[];
  final: {
    val: Metrics | null; test: Metrics | null; trainingSeconds: number;
    /** The train/inference gap (absent from jobs trained before it existed). */
    gap?: { accuracy: number } | null;
  } | null;
  error: { code: string; message: string } | null;
}

export interface RunSummary {
  jobId: string;
  seed: number;
  status: RunStatus;
  epochs: number;
  /** First epoch that reached the target; null when it did not (or there is no target). */
  epochsToTarget: number | null;
  bestValAccuracy: number | null;
  bestEpoch: number | null;
  finalValAccuracy: number | null;
  finalTestAccuracy: number | null;
  /** metrics.gap.accuracy: batch-statistics accuracy − frozen-statistics accuracy; null when the job has none. */
  gap: number | null;
  trainingSeconds: number | null;
  diverged: boolean;
  error: { code: string; message: string } | null;
}

export interface Counts { queued: number; running: number; succeeded: number; failed: number; cancelled: number }

export interface Comparison {
  baseline: number;
  /** Paired by seed; a run that never reached the target counts as slower than one that did. */
  epochsToTarget: { ratio: number | null; pairs: number; fewer: number; more: number; equal: number } | null;
  /** Welch's t interval of mean(variant) − mean(baseline) of the final accuracy. */
  finalAccuracy: ({ metric: 'val.accuracy' | 'test.accuracy' } & Difference) | null;
}

export interface VariantSummary {
  index: number;
  label: string;
  values: Record<string, unknown>;
  jobIds: string[];
  counts: Counts;
  runs: RunSummary[];
  /** Over the finished runs (succeeded or failed); `reached` of `runs` seeds reached the target; stats over those that did. */
  epochsToTarget: { reached: number; runs: number; stats: Stats } | null;
  bestValAccuracy: Stats;
  bestEpoch: Stats;
  finalValAccuracy: Stats;
  finalTestAccuracy: Stats;
  gap: Stats;
  trainingSeconds: Stats;
  diverged: number;
  baseline: number;
  comparison: Comparison | null;
  verdict: string;
}

export interface Summary {
  counts: Counts;
  /** Every run finished (succeeded, failed or cancelled). */
  complete: boolean;
  target: Target | null;
  method: string;
  variants: VariantSummary[];
}

export const METHOD = 'Per variant: mean, sample sd, min, max and a 95% Student-t interval over seeds. Against the baseline: ' +
  'epochs-to-target paired by seed (a run that never reaches the target counts as slower) and the ratio of mean epochs ' +
  'when every run of both reached it; the difference in final accuracy with a 95% Welch t interval (Welch–Satterthwaite df). ' +
  'No winner is declared when seeds disagree or the interval spans zero.';

const FINISHED = new Set<RunStatus>(['succeeded', 'failed', 'cancelled']);

export function summarizeRun(run: RunInput, target: Target | null): RunSummary {
  let bestValAccuracy: number | null = null;
  let bestEpoch: number | null = null;
  let epochsToTarget: number | null = null;
  for (const e of run.history) {
    if (e.val && (bestValAccuracy === null || e.val.accuracy > bestValAccuracy)) {
      bestValAccuracy = e.val.accuracy;
      bestEpoch = e.epoch;
    }
    if (target && epochsToTarget === null && reaches(e, target)) epochsToTarget = e.epoch;
  }
  return {
    jobId: run.jobId, seed: run.seed, status: run.status, epochs: run.history.length,
    epochsToTarget, bestValAccuracy, bestEpoch,
    finalValAccuracy: run.final?.val?.accuracy ?? null,
    finalTestAccuracy: run.final?.test?.accuracy ?? null,
    gap: run.final?.gap?.accuracy ?? null,
    trainingSeconds: run.final?.trainingSeconds ?? null,
    diverged: run.status === 'failed' && run.error?.code === 'DIVERGED',
    error: run.error,
  };
}

function reaches(e: EpochInput, target: Target): boolean {
  const [split, measure] = target.metric.split('.') as ['train' | 'val' | 'test', 'accuracy' | 'loss'];
  const m = e[split];
  if (!m) return false;
  return measure === 'accuracy' ? m.accuracy >= target.value : m.loss <= target.value;
}

export function countStatuses(statuses: RunStatus[]): Counts {
  const counts: Counts = { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
  for (const s of statuses) counts[s]++;
  return counts;
}

const values = (runs: RunSummary[], pick: (r: RunSummary) => number | null) => runs.map(pick).filter((v): v is number => v !== null);

/** What the summary needs of a variant. */
export type VariantInput = Pick<Variant, 'index' | 'label' | 'values' | 'baseline'>;

export function summarize(variants: VariantInput[], runs: RunInput[], target: Target | null): Summary {
  const perVariant = variants.map((v) => {
    const own = runs.filter((r) => r.variant === v.index).sort((a, b) => a.seed - b.seed);
    const summaries = own.map((r) => summarizeRun(r, target));
    const finished = summaries.filter((r) => r.status === 'succeeded' || r.status === 'failed');
    const item: VariantSummary = {
      index: v.index, label: v.label, values: v.values,
      jobIds: own.map((r) => r.jobId),
      counts: countStatuses(own.map((r) => r.status)),
      runs: summaries,
      epochsToTarget: target ? {
        reached: finished.filter((r) => r.epochsToTarget !== null).length,
        runs: finished.length,
        stats: describe(values(finished, (r) => r.epochsToTarget)),
      } : null,
      bestValAccuracy: describe(values(finished, (r) => r.bestValAccuracy)),
      bestEpoch: describe(values(finished, (r) => r.bestEpoch)),
      finalValAccuracy: describe(values(finished, (r) => r.finalValAccuracy)),
      finalTestAccuracy: describe(values(finished, (r) => r.finalTestAccuracy)),
      gap: describe(values(finished, (r) => r.gap)),
      trainingSeconds: describe(values(finished, (r) => r.trainingSeconds)),
      diverged: summaries.filter((r) => r.diverged).length,
      baseline: v.baseline,
      comparison: null,
      verdict: '',
    };
    return item;
  });
  for (const item of perVariant) {
    const base = perVariant[item.baseline]!;
    if (base === item) {
      item.verdict = `${name(item)} is a baseline`;
      continue;
    }
    const pending = [...item.runs, ...base.runs].filter((r) => !FINISHED.has(r.status)).length;
    item.comparison = compare(item, base, target);
    item.verdict = pending > 0
      ? `waiting for ${pending} run${pending === 1 ? '' : 's'} of ${name(item)} and ${name(base)}`
      : verdict(item, base, item.comparison, target);
  }
  const counts = countStatuses(runs.map((r) => r.status));
  return { counts, complete: runs.every((r) => FINISHED.has(r.status)), target, method: METHOD, variants: perVariant };
}

function finishedRuns(v: VariantSummary): RunSummary[] {
  return v.runs.filter((r) => r.status === 'succeeded' || r.status === 'failed');
}

/** The split whose final accuracy is compared: validation when both variants have it, else test. */
function accuracyMetric(a: VariantSummary, b: VariantSummary): 'val.accuracy' | 'test.accuracy' | null {
  if (a.finalValAccuracy.n > 0 && b.finalValAccuracy.n > 0) return 'val.accuracy';
  if (a.finalTestAccuracy.n > 0 && b.finalTestAccuracy.n > 0) return 'test.accuracy';
  return null;
}

export function compare(v: VariantSummary, base: VariantSummary, target: Target | null): Comparison {
  let epochsToTarget: Comparison['epochsToTarget'] = null;
  if (target) {
    const mine = new Map(finishedRuns(v).map((r) => [r.seed, r.epochsToTarget ?? Infinity]));
    let fewer = 0; let more = 0; let equal = 0;
    for (const r of finishedRuns(base)) {
      const e = mine.get(r.seed);
      if (e === undefined) continue;
      const b = r.epochsToTarget ?? Infinity;
      if (e < b) fewer++; else if (e > b) more++; else equal++;
    }
    const vt = v.epochsToTarget!; const bt = base.epochsToTarget!;
    const allReached = vt.reached === vt.runs && bt.reached === bt.runs && vt.runs > 0 && bt.runs > 0;
    const ratio = allReached ? bt.stats.mean! / vt.stats.mean! : null;
    epochsToTarget = { ratio, pairs: fewer + more + equal, fewer, more, equal };
  }
  const metric = accuracyMetric(v, base);
  const pick = metric === 'val.accuracy' ? (r: RunSummary) => r.finalValAccuracy : (r: RunSummary) => r.finalTestAccuracy;
  const d = metric ? welch(values(finishedRuns(v), pick), values(finishedRuns(base), pick)) : null;
  return { baseline: base.index, epochsToTarget, finalAccuracy: d && metric ? { metric, ...d } : null };
}

const name = (v: VariantSummary) => v.label || `variant ${v.index}`;
const fixed = (x: number | null, digits: number) => (x === null ? '–' : x.toFixed(digits));
const signed = (x: number, digits = 3) => `${x >= 0 ? '+' : '−'}${Math.abs(x).toFixed(digits)}`;
const meanSd = (s: Stats, digits: number) => `${fixed(s.mean, digits)} ± ${fixed(s.sd ?? (s.n === 1 ? 0 : null), digits)}`;

/** A name for a variant that differs from the baseline: only the values that differ. */
function shortName(v: VariantSummary, base: VariantSummary): string {
  const differing = Object.entries(v.values).filter(([p, x]) => JSON.stringify(x) !== JSON.stringify(base.values[p]));
  return differing.map(([p, x]) => `${p}=${typeof x === 'string' ? x : JSON.stringify(x)}`).join(', ') || name(v);
}

function baseName(v: VariantSummary, base: VariantSummary): string {
  const differing = Object.entries(base.values).filter(([p, x]) => JSON.stringify(x) !== JSON.stringify(v.values[p]));
  return differing.map(([, x]) => (typeof x === 'string' ? x : JSON.stringify(x))).join(', ') || name(base);
}

/** The grid values a variant shares with its baseline (the setting the comparison is made at), e.g. "at training.optimizer.learningRate=0.1". */
function context(v: VariantSummary, base: VariantSummary): string {
  const shared = Object.entries(v.values).filter(([p, x]) => JSON.stringify(x) === JSON.stringify(base.values[p]));
  return shared.length > 0 ? ` at ${shared.map(([p, x]) => `${p}=${typeof x === 'string' ? x : JSON.stringify(x)}`).join(', ')}` : '';
}

export function verdict(v: VariantSummary, base: VariantSummary, c: Comparison, target: Target | null): string {
  const me = shortName(v, base);
  const them = `${baseName(v, base)}${context(v, base)}`;
  const parts: string[] = [];
  if (target && c.epochsToTarget) {
    const vt = v.epochsToTarget!; const bt = base.epochsToTarget!;
    const e = c.epochsToTarget;
    const goal = `${target.metric} ${target.value}`;
    if (vt.reached === 0 && bt.reached === 0) {
      parts.push(`neither ${me} nor ${them} reaches ${goal} (0 of ${vt.runs} and 0 of ${bt.runs} seeds)`);
    } else {
      const reach = (t: NonNullable<VariantSummary['epochsToTarget']>) => (t.reached === t.runs
        ? `${meanSd(t.stats, 1)} epochs`
        : `${t.reached} of ${t.runs} seeds${t.reached > 0 ? ` (${meanSd(t.stats, 1)} epochs where reached)` : ''}`);
      let how: string;
      if (e.pairs > 0 && e.fewer === e.pairs) how = e.ratio !== null ? `${e.ratio.toFixed(1)}× fewer, ${e.fewer} of ${e.pairs} seeds` : `fewer epochs in ${e.fewer} of ${e.pairs} seeds`;
      else if (e.pairs > 0 && e.more === e.pairs) how = e.ratio !== null ? `${(1 / e.ratio).toFixed(1)}× more, ${e.more} of ${e.pairs} seeds` : `more epochs in ${e.more} of ${e.pairs} seeds`;
      else if (e.pairs > 0 && e.equal === e.pairs) how = `the same number of epochs in ${e.equal} of ${e.pairs} seeds`;
      else how = `seeds disagree: fewer epochs in ${e.fewer}, more in ${e.more}, the same in ${e.equal} of ${e.pairs}; no winner`;
      parts.push(`${me} reaches ${goal} in ${reach(vt)} vs ${reach(bt)} for ${them} (${how})`);
    }
  }
  const d = c.finalAccuracy;
  if (d) {
    const mine = d.metric === 'val.accuracy' ? v.finalValAccuracy : v.finalTestAccuracy;
    const theirs = d.metric === 'val.accuracy' ? base.finalValAccuracy : base.finalTestAccuracy;
    const interval = `${signed(d.difference)}, 95% CI ${signed(d.ci95[0])} to ${signed(d.ci95[1])}`;
    const spans = d.ci95[0] <= 0 && d.ci95[1] >= 0;
    const lead = parts.length > 0 ? 'final' : `${me} vs ${them}: final`;
    parts.push(`${lead} ${d.metric} ${fixed(mine.mean, 3)} vs ${fixed(theirs.mean, 3)} (${interval}${spans ? ': the interval spans zero, no difference shown' : d.difference > 0 ? ': higher' : ': lower'})`);
  } else {
    const having = (x: VariantSummary) => `${Math.max(x.finalValAccuracy.n, x.finalTestAccuracy.n)} of ${x.runs.length}`;
    parts.push(`${parts.length > 0 ? '' : `${me} vs ${them}: `}final accuracy not compared (it needs two seeds of each; ` +
      `seeds with a final accuracy: ${having(v)} for ${me}, ${having(base)} for ${baseName(v, base)})`);
  }
  if (v.diverged > 0 || base.diverged > 0) {
    parts.push(`diverged: ${v.diverged} of ${v.runs.length} seeds for ${me}, ${base.diverged} of ${base.runs.length} for ${baseName(v, base)}`);
  }
  return parts.join('; ');
}
