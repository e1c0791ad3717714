/**
 * Request validation with TypeBox (the schemas the routes declare, which also
 * feed OpenAPI). Bodies are checked strictly: a string where a number belongs
 * is an error, not a coercion. Query strings and path parameters are strings
 * on the wire, so they are converted to the declared types first. Plain
 * (non-TypeBox) schemas only document a body the handler parses itself.
 */
import { TypeGuard, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Value } from '@sinclair/typebox/value';
import type { FastifySchemaCompiler, FastifyTypeProvider } from 'fastify';
import { explainErrors } from '../core/schema-errors.js';
import { resolveSpec } from '../core/spec.js';
import { ValidationError } from './errors.js';

const MAX_ISSUES = 20;

export const typeboxValidatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  if (!TypeGuard.IsSchema(schema)) return () => true;
  const checker = TypeCompiler.Compile(schema);
  const part = httpPart === 'body' ? 'body' : httpPart === 'params' ? 'path' : httpPart ?? 'request';
  return (data: unknown) => {
    const input = part === 'body' ? data : Value.Convert(schema, data);
    const value = Value.Default(schema, input);
    if (checker.Check(value)) return { value };
    return { error: new ValidationError(part, explainErrors(checker.Errors(value), MAX_ISSUES)) };
  };
};

/** The job spec body: `resolveSpec` validates it, fills its defaults and applies the rules a schema cannot express. */
// `any`: as a route option its schema type is the whole route schema.
export const jobSpecValidatorCompiler: FastifySchemaCompiler<any> = (route) => {
  if (route.httpPart !== 'body') return typeboxValidatorCompiler(route);
  return (data: unknown) => {
    try {
      return { value: resolveSpec(data) };
    } catch (err) {
      return { error: err as Error };
    }
  };
};

/** Request types from the route's TypeBox schemas (what @fastify/type-provider-typebox does for validation). */
export interface TypeBoxTypeProvider extends FastifyTypeProvider {
  validator: this['schema'] extends TSchema ? Static<this['schema']> : unknown;
}
