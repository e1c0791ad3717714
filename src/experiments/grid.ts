/**
 * Grid expansion: an experiment request → its variants (one job spec each,
 * validated by the same `resolveSpec` as POST /v1/jobs) and its runs (one
 * per variant and seed). Every error names the request field: `/grid/<path>`,
 * `/seeds/<i>`, `/target/metric`, `/baseline/<path>`, or the variant and the
 * job spec field its values broke.
 */
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { JobSpecSchema, resolveSpec, SpecError, type JobSpec } from '../core/spec.js';
import {
  ExperimentError, ExperimentSpecShape, ExperimentTooLargeError, TARGET_METRICS,
  type ExperimentIssue, type ExperimentSpec, type TargetMetric,
} from './spec.js';
import { buildTemplate } from './templates.js';

export interface Target { metric: TargetMetric; value: number }

export interface Variant {
  index: number;
  /** Grid path → value (a comma-joined axis contributes each of its paths). */
  values: Record<string, unknown>;
  /** `path=value, …`: how summaries and verdicts name the variant. */
  label: string;
  /** The resolved job spec; training.seed is set per run. */
  spec: JobSpec;
  /** Index of the variant this one is compared with (itself when it is a baseline). */
  baseline: number;
}

export interface Run { variant: number; seed: number; spec: JobSpec }

export interface ResolvedExperiment {
  name: string | null;
  template: string | null;
  /** The request after template expansion and defaults (what GET returns as `spec`). */
  request: ExperimentSpec;
  /** Grid paths in order (comma-joined axes split into their paths). */
  paths: string[];
  seeds: number[];
  target: Target | null;
  variants: Variant[];
  runs: Run[];
}

/**
 * Check and expand a request (a spec, or `{template, overrides}`). Throws
 * ExperimentError naming every offending field, ExperimentTooLargeError
 * above `maxJobs` runs (checked before any variant is built).
 */
export function resolveExperiment(input: unknown, maxJobs: number): ResolvedExperiment {
  let template: string | null = null;
  let raw = input;
  if (isObject(input) && 'template' in input) {
    template = String(input.template);
    raw = buildTemplate(input);
  }
  const request = Value.Default(ExperimentSpecShape, Value.Clone(raw)) as ExperimentSpec;
  const shapeIssues: ExperimentIssue[] = [];
  for (const e of Value.Errors(ExperimentSpecShape, request)) {
    if (!shapeIssues.some((i) => i.path === e.path)) shapeIssues.push({ path: e.path, message: e.message });
    if (shapeIssues.length >= 20) break;
  }
  if (shapeIssues.length > 0) throw new ExperimentError(shapeIssues);

  const issues: ExperimentIssue[] = [];
  const axes = Object.entries(request.grid).map(([key, values]) => ({ key, paths: key.split(',').map((p) => p.trim()), values }));
  for (const axis of axes) {
    for (const p of axis.paths) {
      if (p === 'training.seed') issues.push({ path: `/grid/${axis.key}`, message: 'training.seed is set by `seeds`, not by the grid' });
      else if (!specHasPath(p)) issues.push({ path: `/grid/${axis.key}`, message: `${p} is not a field of the job spec` });
    }
    if (axis.values.length === 0) issues.push({ path: `/grid/${axis.key}`, message: 'needs at least one value' });
    axis.values.forEach((v, i) => {
      if (axis.paths.length > 1 && (!Array.isArray(v) || v.length !== axis.paths.length)) {
        issues.push({ path: `/grid/${axis.key}/${i}`, message: `must be an array of ${axis.paths.length} values, one per path` });
      }
      const first = axis.values.findIndex((w) => canonical(w) === canonical(v));
      if (first < i) issues.push({ path: `/grid/${axis.key}/${i}`, message: `duplicates value ${first} (${canonical(v)})` });
    });
  }
  const paths = axes.flatMap((a) => a.paths);
  const repeated = paths.filter((p, i) => paths.indexOf(p) !== i);
  for (const p of new Set(repeated)) issues.push({ path: '/grid', message: `${p} appears in more than one axis` });
  request.seeds.forEach((s, i) => {
    const first = request.seeds.indexOf(s);
    if (first < i) issues.push({ path: `/seeds/${i}`, message: `duplicates seed ${s} (seeds/${first})` });
  });
  const target = request.target ?? null;
  if (target && !(TARGET_METRICS as readonly string[]).includes(target.metric)) {
    issues.push({ path: '/target/metric', message: `unknown metric "${target.metric}"; allowed: ${TARGET_METRICS.join(', ')}`, allowed: [...TARGET_METRICS] });
  }
  if (issues.length > 0) throw new ExperimentError(issues);

  const variantCount = axes.reduce((n, a) => n * a.values.length, 1);
  const jobs = variantCount * request.seeds.length;
  if (jobs > maxJobs) throw new ExperimentTooLargeError(jobs, maxJobs, variantCount, request.seeds.length);

  // Cartesian product, the first axis slowest.
  let combos: Array<Record<string, unknown>> = [{}];
  for (const axis of axes) {
    combos = combos.flatMap((c) => axis.values.map((v) => {
      const parts = axis.paths.length > 1 ? (v as unknown[]) : [v];
      return { ...c, ...Object.fromEntries(axis.paths.map((p, j) => [p, parts[j]])) };
    }));
  }
  const variants: Variant[] = [];
  const seen = new Map<string, number>();
  combos.forEach((values, index) => {
    const label = variantLabel(values);
    const raw = Value.Clone(request.base) as Record<string, unknown>;
    for (const [p, v] of Object.entries(values)) setPath(raw, p, Value.Clone(v));
    let spec: JobSpec;
    try {
      spec = resolveSpec(raw);
    } catch (err) {
      if (!(err instanceof SpecError)) throw err;
      for (const i of err.issues) {
        issues.push({ path: i.path, message: `variant ${index} (${label}): ${i.path || '/'}: ${i.message}`, variant: index, values });
      }
      return;
    }
    const key = canonical({ ...spec, name: null, training: { ...spec.training, seed: 0 } });
    const same = seen.get(key);
    if (same !== undefined) issues.push({ path: '/grid', message: `variants ${same} (${variants[same]?.label}) and ${index} (${label}) are the same job spec`, variants: [same, index] });
    seen.set(key, index);
    if (target?.metric.startsWith('val.') && spec.dataset.validationSplit === 0) {
      issues.push({ path: '/target/metric', message: `variant ${index} (${label}) has no validation split (dataset.validationSplit is 0)`, variant: index });
    }
    variants.push({ index, values, label, spec, baseline: index });
  });
  if (issues.length > 0) throw new ExperimentError(issues.slice(0, 20));

  assignBaselines(variants, request.baseline ?? null, paths, issues);
  if (issues.length > 0) throw new ExperimentError(issues);

  const name = request.name ?? null;
  const runs = variants.flatMap((v) => request.seeds.map((seed): Run => ({
    variant: v.index, seed,
    spec: { ...v.spec, name: runName(name, v.label, seed), training: { ...v.spec.training, seed } },
  })));
  return { name, template, request, paths, seeds: request.seeds, target: target as Target | null, variants, runs };
}

/**
 * Each variant's baseline: its own values with the baseline's put over them.
 * The baseline names values of grid axes only, each one the axis has.
 */
function assignBaselines(variants: Variant[], baseline: Record<string, unknown> | null, paths: string[], issues: ExperimentIssue[]): void {
  const chosen: Record<string, unknown> = {};
  if (baseline === null || Object.keys(baseline).length === 0) {
    Object.assign(chosen, variants[0]!.values);
  } else {
    for (const [key, value] of Object.entries(baseline)) {
      const keyPaths = key.split(',').map((p) => p.trim());
      if (!keyPaths.every((p) => paths.includes(p))) {
        issues.push({ path: `/baseline/${key}`, message: `not a grid axis; the axes are ${paths.join(', ')}` });
        continue;
      }
      const parts = keyPaths.length > 1 ? (Array.isArray(value) ? value : []) : [value];
      keyPaths.forEach((p, j) => { chosen[p] = parts[j]; });
      const axisValues = new Set(variants.map((v) => canonical(keyPaths.map((p) => v.values[p]))));
      if (!axisValues.has(canonical(keyPaths.map((p) => chosen[p])))) {
        issues.push({ path: `/baseline/${key}`, message: `${canonical(value)} is not one of the grid's values for ${key}` });
      }
    }
    if (issues.length > 0) return;
  }
  const byValues = new Map(variants.map((v) => [canonical(v.values), v.index]));
  for (const v of variants) {
    v.baseline = byValues.get(canonical({ ...v.values, ...chosen })) ?? v.index;
  }
}

function runName(name: string | null, label: string, seed: number): string {
  return `${name ? `${name}: ` : ''}${label || 'base'} seed ${seed}`.slice(0, 200);
}

export function variantLabel(values: Record<string, unknown>): string {
  return Object.entries(values).map(([p, v]) => `${p}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(', ');
}

/** JSON with object keys sorted, so equal values compare equal. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (isObject(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1))) : v));
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function setPath(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let node = target;
  for (const part of parts.slice(0, -1)) {
    if (!isObject(node[part])) node[part] = {};
    node = node[part] as Record<string, unknown>;
  }
  node[parts.at(-1)!] = value;
}

/** Whether a dot path names a field of the job spec (through unions such as the optimizer's types). */
export function specHasPath(path: string): boolean {
  let nodes: TSchema[] = [JobSpecSchema];
  for (const part of path.split('.')) {
    nodes = nodes.flatMap(branches).map((n) => n.properties?.[part] as TSchema | undefined).filter((n): n is TSchema => n !== undefined);
    if (nodes.length === 0) return false;
  }
  return true;
}

function branches(schema: TSchema): TSchema[] {
  if (Array.isArray(schema.anyOf)) return (schema.anyOf as TSchema[]).flatMap(branches);
  return schema.properties ? [schema] : [];
}
