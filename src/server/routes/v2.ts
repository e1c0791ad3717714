/**
 * Open Inference Protocol v2 (REST), the protocol KServe and Triton speak:
 * server and model metadata, health, and infer. Same API keys and tenants as
 * /v1 (another tenant's model is unknown here too); errors are the protocol's
 * `{"error": "…"}`. infer runs /v1/models/:id/predict's predictRows, with its limits,
 * so it answers exactly the same numbers.
 */
import type { FastifyError, FastifyPluginAsync } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { InferenceModel } from '../../core/inference.js';
import { checkReady, READY_TIMEOUT_MS } from '../../store/redis.js';
import { HttpError, ValidationError } from '../errors.js';
import { checkPredictLimits, predictRows } from '../predict.js';
import { InferResponse, inferRequest, ModelMetadata, ModelNameParams, ServerMetadata, V2Error, v2Errors } from '../schemas/v2.js';
import type { TypeBoxTypeProvider } from '../validation.js';
import { packageVersion } from '../../version.js';

const FLOAT32_MAX = 3.4028234663852886e38;
const bad = (message: string) => new HttpError(400, 'INVALID_INFER_REQUEST', message);

/** Status and message of an error in the protocol's terms; 5xx never show internals. */
function v2Answer(err: FastifyError): { status: number; message: string } {
  if (err instanceof HttpError) return { status: err.statusCode, message: err.message };
  if (err instanceof ValidationError) return { status: 400, message: err.message };
  if (err.name === 'MaxRetriesPerRequestError') return { status: 503, message: 'the service cannot reach Redis; retry shortly' };
  const status = err.statusCode ?? 500;
  return status >= 400 && status < 500 ? { status, message: err.message } : { status: 500, message: 'internal error' };
}

/**
 * The input tensor's values as float32 rows: `data` flat (n·features values)
 * or nested as `shape`. Every value a finite float32.
 */
function inputRows(input: { shape: number[]; datatype: string; data: unknown[] }, model: InferenceModel, maxRows: number): { rows: Float32Array; n: number } {
  if (input.datatype !== 'FP32') throw bad(`inputs[0].datatype: ${input.datatype} is not supported; send FP32`);
  const [n, ...rest] = input.shape as [number, ...number[]];
  const { inputShape, features } = model.manifest;
  const fits = (a: number[]) => a.length === rest.length && a.every((d, i) => d === rest[i]);
  if (!fits(inputShape) && !fits([features])) {
    throw bad(`inputs[0].shape: [${input.shape.join(', ')}] does not fit the model; expected [n, ${inputShape.join(', ')}]` +
      (inputShape.length > 1 ? ` or [n, ${features}]` : ''));
  }
  if (n > maxRows) throw bad(`inputs[0].shape: ${n} rows is more than the limit of ${maxRows} (PREDICT_MAX_ROWS)`);
  const rows = new Float32Array(n * features);
  let k = 0;
  const put = (v: unknown, where: string) => {
    if (typeof v !== 'number' || !(Math.abs(v) <= FLOAT32_MAX)) throw bad(`inputs[0].data${where}: ${JSON.stringify(v)} is not a finite FP32 number`);
    rows[k++] = v;
  };
  const { data } = input;
  if (data.length === rows.length && data.every((v) => !Array.isArray(v))) {
    data.forEach((v, i) => put(v, `[${i}]`));
    return { rows, n };
  }
  const walk = (v: unknown, depth: number, where: string): void => {
    if (depth === input.shape.length) return put(v, where);
    if (!Array.isArray(v) || v.length !== input.shape[depth]) {
      throw bad(`inputs[0].data${where}: expected ${input.shape[depth]} ${depth + 1 === input.shape.length ? 'values' : 'arrays'} ` +
        `(shape [${input.shape.join(', ')}], or ${rows.length} values flat)`);
    }
    v.forEach((x, i) => walk(x, depth + 1, `${where}[${i}]`));
  };
  walk(data, 0, '');
  return { rows, n };
}

const v2Routes: FastifyPluginAsync = async (fastify) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { services } = app;
  app.addSchema(V2Error);

  app.setErrorHandler((err: FastifyError, request, reply) => {
    const { status, message } = v2Answer(err);
    if (status >= 500) request.log.error({ err }, 'request failed');
    // Sent as text: the OpenAPI plugin documents 401/429 with /v1's error schema, which would reshape this body.
    return reply.code(status).type('application/json; charset=utf-8').send(JSON.stringify({ error: message }));
  });
  app.setNotFoundHandler((request, reply) => reply.code(404).type('application/json; charset=utf-8')
    .send(JSON.stringify({ error: `no route ${request.method} ${request.url.split('?')[0]}` })));

  const loaded = async (tenant: string, id: string) => {
    const model = await services.modelCache.get(tenant, id);
    if (!model) throw new HttpError(404, 'MODEL_NOT_FOUND', `no model named ${id}`);
    return model;
  };

  app.get('', {
    schema: { tags: ['v2'], summary: 'Server metadata', response: { 200: ServerMetadata, ...v2Errors(401) } },
  }, async () => ({ name: 'normlab', version: packageVersion(), extensions: [] }));

  app.get('/health/live', {
    config: { rateLimit: false },
    schema: { tags: ['v2'], summary: 'The server is live', security: [], response: { 200: Type.Object({ live: Type.Boolean() }) } },
  }, async () => ({ live: true }));

  app.get('/health/ready', {
    config: { rateLimit: false },
    schema: {
      tags: ['v2'], summary: 'The server is ready for inference (Redis is usable, as /v1/readyz checks); 400 when not, as the protocol says', security: [],
      response: { 200: Type.Object({ ready: Type.Boolean() }), 400: Type.Object({ ready: Type.Boolean() }) },
    },
  }, async (_request, reply) => {
    try {
      await checkReady(services.redis, READY_TIMEOUT_MS);
      return { ready: true };
    } catch {
      return reply.code(400).send({ ready: false });
    }
  });

  app.get('/models/:model_name', {
    schema: {
      tags: ['v2'], summary: 'Model metadata: the input and output tensors (-1: the batch dimension)',
      params: ModelNameParams, response: { 200: ModelMetadata, ...v2Errors(400, 404) },
    },
  }, async (request) => {
    const id = request.params.model_name;
    const model = await loaded(request.tenant, id);
    return {
      name: id, versions: [], platform: 'normlab',
      inputs: [{ name: 'input', datatype: 'FP32', shape: [-1, ...model.manifest.inputShape] }],
      outputs: [
        { name: 'probabilities', datatype: 'FP32', shape: [-1, model.classes] },
        { name: 'label', datatype: 'INT64', shape: [-1] },
      ],
    };
  });

  app.get('/models/:model_name/ready', {
    schema: {
      tags: ['v2'], summary: 'The model is loaded and ready',
      params: ModelNameParams, response: { 200: Type.Object({ name: Type.String(), ready: Type.Boolean() }), ...v2Errors(400, 404) },
    },
  }, async (request) => {
    const id = request.params.model_name;
    await loaded(request.tenant, id);
    return { name: id, ready: true };
  });

  app.post('/models/:model_name/infer', {
    schema: {
      tags: ['v2'], summary: 'Infer: probabilities FP32 [n, classes] and label INT64 [n] (class index)',
      description: 'The same numbers as POST /v1/models/:id/predict for the same rows, to the last bit.',
      params: ModelNameParams, body: inferRequest(services.config.predictMaxRows),
      response: { 200: InferResponse, ...v2Errors(400, 404, 413) },
    },
  }, async (request) => {
    const id = request.params.model_name;
    const model = await loaded(request.tenant, id);
    const { rows, n } = inputRows(request.body.inputs[0]!, model, services.config.predictMaxRows);
    checkPredictLimits(model, n, services.config);
    const start = process.hrtime.bigint();
    const predictions = await predictRows(model, id, rows, n);
    services.metrics.observePredict('v2', n, Number(process.hrtime.bigint() - start) / 1e9);
    const wanted = new Set(request.body.outputs?.map((o) => o.name) ?? ['probabilities', 'label']);
    const outputs = [];
    if (wanted.has('probabilities')) {
      outputs.push({ name: 'probabilities', datatype: 'FP32', shape: [n, model.classes], data: predictions.flatMap((p) => p.probabilities) });
    }
    if (wanted.has('label')) outputs.push({ name: 'label', datatype: 'INT64', shape: [n], data: predictions.map((p) => model.classNames.indexOf(p.label)) });
    return { model_name: id, ...(request.body.id === undefined ? {} : { id: request.body.id }), outputs };
  });
};

export default v2Routes;
