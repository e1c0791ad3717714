/**
 * The one place TypeBox validation errors become messages for people: each
 * names the field's JSON path and either the allowed values or the rule the
 * value broke. TypeBox reports a failed union as "Expected union value" with
 * the errors of every branch inside; here a union of literals lists its
 * values, a nullable field explains its non-null form, and a union of
 * objects told apart by `type` explains the branch whose `type` matches.
 */
import { Kind, type TSchema } from '@sinclair/typebox';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';

/** One offending field: its path, what is wrong, and the allowed values when they are a closed list. */
export interface SchemaIssue { path: string; message: string; allowed?: unknown[]; [extra: string]: unknown }

const isKind = (s: TSchema | undefined, kind: string) => s !== undefined && (s as { [Kind]?: string })[Kind] === kind;
const variants = (s: TSchema): TSchema[] => (s as unknown as { anyOf: TSchema[] }).anyOf;

/** The literal values a schema accepts, when it accepts only literals (nested unions included); else null. */
function literalValues(s: TSchema): unknown[] | null {
  if (isKind(s, 'Literal')) return [(s as unknown as { const: unknown }).const];
  if (!isKind(s, 'Union')) return null;
  const out: unknown[] = [];
  for (const v of variants(s)) {
    const values = literalValues(v);
    if (!values) return null;
    out.push(...values);
  }
  return out;
}

/** The `type` literals of an object branch (a layer or optimizer kind), or null when it has none. */
function typeTag(s: TSchema): unknown[] | null {
  if (!isKind(s, 'Object')) return null;
  const tag = (s as unknown as { properties: Record<string, TSchema> }).properties.type;
  return tag ? literalValues(tag) : null;
}

const describe = (values: unknown[]) => values.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))).join(', ');

/** A short name of what a schema accepts ("a number", "an object"), for type mismatches. */
function expected(s: TSchema): string {
  const literals = literalValues(s);
  if (literals) return `one of ${describe(literals)}`;
  switch ((s as { [Kind]?: string })[Kind]) {
    case 'Integer': return 'an integer';
    case 'Number': return 'a number';
    case 'String': return 'a string';
    case 'Boolean': return 'true or false';
    case 'Object': return 'an object';
    case 'Array': return 'an array';
    case 'Null': return 'null';
    default: return 'a valid value';
  }
}

const bound = (e: ValueError, key: string) => (e.schema as unknown as Record<string, number>)[key];

/** The message of a failure that is not a union. */
function ruleMessage(e: ValueError): string {
  switch (e.type) {
    case ValueErrorType.Number: case ValueErrorType.Integer: case ValueErrorType.String: case ValueErrorType.Boolean:
    case ValueErrorType.Object: case ValueErrorType.Array: case ValueErrorType.Null: case ValueErrorType.Literal:
      return `must be ${expected(e.schema)}`;
    case ValueErrorType.NumberMinimum: case ValueErrorType.IntegerMinimum: return `must be >= ${bound(e, 'minimum')}`;
    case ValueErrorType.NumberExclusiveMinimum: case ValueErrorType.IntegerExclusiveMinimum: return `must be > ${bound(e, 'exclusiveMinimum')}`;
    case ValueErrorType.NumberMaximum: case ValueErrorType.IntegerMaximum: return `must be <= ${bound(e, 'maximum')}`;
    case ValueErrorType.NumberExclusiveMaximum: case ValueErrorType.IntegerExclusiveMaximum: return `must be < ${bound(e, 'exclusiveMaximum')}`;
    case ValueErrorType.StringMinLength: return `must have at least ${bound(e, 'minLength')} characters`;
    case ValueErrorType.StringMaxLength: return `must have at most ${bound(e, 'maxLength')} characters`;
    case ValueErrorType.StringPattern: return `must match ${(e.schema as unknown as { pattern: string }).pattern}`;
    case ValueErrorType.ArrayMinItems: return `must have at least ${bound(e, 'minItems')} items`;
    case ValueErrorType.ArrayMaxItems: return `must have at most ${bound(e, 'maxItems')} items`;
    case ValueErrorType.ObjectRequiredProperty: return 'is required';
    case ValueErrorType.ObjectAdditionalProperties: return 'is not a known field';
    default: return e.message;
  }
}

/** The issues one TypeBox error stands for (a union explains itself through its closest branch). */
export function explainError(e: ValueError): SchemaIssue[] {
  // Defaults are not filled inside a union branch that fails; such a field is not what is wrong.
  if (e.value === undefined && typeof e.schema === 'object' && e.schema !== null && 'default' in e.schema) return [];
  if (e.type !== ValueErrorType.Union) {
    const literals = e.type === ValueErrorType.Literal ? null : literalValues(e.schema);
    return [{ path: e.path, message: ruleMessage(e), ...(literals ? { allowed: literals } : {}) }];
  }
  const union = e.schema;
  const enumValues = literalValues(union);
  if (enumValues) return [{ path: e.path, message: `must be one of ${describe(enumValues)}`, allowed: enumValues }];
  const all = variants(union);
  // Type.Union([X], { default }) only carries a default: explain X.
  if (all.length === 1) return [...e.errors[0]!].flatMap(explainError);
  const nonNull = all.filter((b) => !isKind(b, 'Null'));
  const nullable = nonNull.length < all.length;
  const branchErrors = (b: TSchema) => [...e.errors[all.indexOf(b)]!];
  const value = e.value as Record<string, unknown> | null;
  const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);

  // Objects told apart by `type` (layers, optimizers, schedules): explain the branch whose type matches, or list the types.
  const tagged = nonNull.filter((b) => typeTag(b) !== null);
  if (tagged.length > 1 && isObject) {
    const match = tagged.find((b) => typeTag(b)!.includes(value.type));
    if (match) return explainBranch(e, branchErrors(match));
    const types = tagged.flatMap((b) => typeTag(b)!);
    const message = value.type === undefined ? `is required: one of ${describe(types)}` : `must be one of ${describe(types)}`;
    return [{ path: `${e.path}/type`, message, allowed: types }];
  }
  // A nullable number or object, or a literal-or-object like init: when one branch has the value's JSON type, its rule is what failed.
  const literals = nonNull.flatMap((b) => literalValues(b) ?? []);
  const others = nonNull.filter((b) => literalValues(b) === null);
  const sameShape = others.filter((b) => shapeMatches(b, e.value));
  if (sameShape.length === 1) return explainBranch(e, branchErrors(sameShape[0]!), nullable ? ' (or null)' : '');
  const forms = [...new Set([...(literals.length > 0 ? [`one of ${describe(literals)}`] : []), ...others.map(expected), ...(nullable ? ['null'] : [])])];
  return [{ path: e.path, message: `must be ${forms.join(' or ')}`, ...(literals.length > 0 ? { allowed: literals } : {}) }];
}

function explainBranch(e: ValueError, errors: ValueError[], suffix = ''): SchemaIssue[] {
  const issues = errors.flatMap(explainError);
  if (issues.length === 0) return [{ path: e.path, message: e.message }];
  return issues.map((i) => (i.path === e.path ? { ...i, message: i.message + suffix } : i));
}

/** Whether a value has the JSON type a branch expects (so the branch's own rules are what it broke). */
function shapeMatches(b: TSchema, v: unknown): boolean {
  switch ((b as { [Kind]?: string })[Kind]) {
    case 'Number': case 'Integer': return typeof v === 'number';
    case 'String': return typeof v === 'string';
    case 'Boolean': return typeof v === 'boolean';
    case 'Array': return Array.isArray(v);
    case 'Object': return typeof v === 'object' && v !== null && !Array.isArray(v);
    default: return false;
  }
}

/** Every issue of a set of TypeBox errors, one per path (the first), at most `max`. */
export function explainErrors(errors: Iterable<ValueError>, max = 20): SchemaIssue[] {
  const out: SchemaIssue[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    for (const issue of explainError(e)) {
      if (seen.has(issue.path)) continue;
      seen.add(issue.path);
      out.push(issue);
    }
    if (out.length >= max) break;
  }
  return out.slice(0, max);
}
