/**
 * The dashboard: static pages (src/server/public) and uPlot from node_modules,
 * served without a key because they hold no data (the page asks for one and
 * sends it on every /v1 call), and GET /v1/datasets/:id/samples, a few rows of
 * a dataset to draw and predict. Pages have URLs of their own (/, /jobs/:id,
 * /experiments/:id, /models/:id); each is the same shell, which reads the path.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { isBuiltinDataset, listBuiltinDatasets } from '../../datasets/index.js';
import { loadFashionMnistTestImages } from '../../datasets/fashion-mnist.js';
import { HttpError, notFound } from '../errors.js';
import { errors } from '../schemas/common.js';
import { DatasetParams } from '../schemas/datasets.js';
import type { TypeBoxTypeProvider } from '../validation.js';

/** The project root: the nearest directory up from here with a package.json (in the sources or in dist/). */
function projectRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  return dir;
}

const PUBLIC_DIR = path.join(projectRoot(), 'src', 'server', 'public');
const UPLOT_DIR = path.dirname(createRequire(import.meta.url).resolve('uplot'));
const PAGES = ['/', '/jobs/:id', '/experiments/:id', '/models/:id'];
/** Scripts and styles from this origin only; uPlot sizes its elements through inline styles. */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

export const SAMPLES_MAX = 64;

const SamplesQuery = Type.Object({
  split: Type.Union([Type.Literal('test'), Type.Literal('train')], { default: 'test' }),
  offset: Type.Integer({ minimum: 0, maximum: 1_000_000, default: 0 }),
  limit: Type.Integer({ minimum: 1, maximum: SAMPLES_MAX, default: 16 }),
}, { additionalProperties: false });

const SamplesResponse = Type.Object({
  datasetId: Type.String(),
  split: Type.String(),
  offset: Type.Integer(),
  total: Type.Integer({ description: 'Rows in the split' }),
  inputShape: Type.Array(Type.Integer()),
  classNames: Type.Array(Type.String()),
  samples: Type.Array(Type.Object({
    index: Type.Integer({ description: 'Row in the split' }),
    label: Type.Integer(),
    features: Type.Array(Type.Number(), { description: 'Raw values, as predict takes them' }),
  })),
});

/** Static pages and scripts, at the root. */
export const dashboardPages: FastifyPluginAsync = async (app) => {
  app.addHook('onRoute', (route) => { route.config = { ...(route.config as object), public: true }; });
  app.addHook('onSend', async (_request, reply) => {
    reply.header('content-security-policy', CSP);
    reply.header('x-content-type-options', 'nosniff');
  });
  await app.register(fastifyStatic, { root: PUBLIC_DIR, prefix: '/ui/', index: false, wildcard: true });
  await app.register(fastifyStatic, {
    root: UPLOT_DIR, prefix: '/ui/vendor/uplot/', decorateReply: false, index: false, wildcard: true,
    allowedPath: (pathname) => ['/uPlot.iife.min.js', '/uPlot.min.css'].includes(pathname),
  });
  for (const url of PAGES) {
    app.get(url, { schema: { hide: true } }, (_request, reply) => reply.sendFile('index.html', PUBLIC_DIR, { cacheControl: false }));
  }
};

/** GET /v1/datasets/:id/samples: bounded, and an upload only for the tenant that owns it. */
export const samplesRoute: FastifyPluginAsync = async (fastify) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { services } = app;

  app.get('/datasets/:id/samples', {
    schema: {
      tags: ['datasets'],
      summary: 'A few rows of a dataset with their labels',
      description: `Raw feature values (what predict takes), at most ${SAMPLES_MAX} rows per request. ` +
        'Fashion-MNIST: the test split; an upload: its rows (split train). Synthetic sets are generated per job and have none.',
      params: DatasetParams,
      querystring: SamplesQuery,
      response: { 200: SamplesResponse, ...errors(400, 404, 422) },
    },
  }, async (request) => {
    const { id } = request.params;
    const { split, offset, limit } = request.query;
    const unavailable = (allowed: string[]) => new HttpError(400, 'SPLIT_UNAVAILABLE',
      allowed.length === 0
        ? `/querystring/split: dataset ${id} is generated per job from its spec and has no stored rows`
        : `/querystring/split: dataset ${id} has no ${split} rows to sample; allowed: ${allowed.join(', ')}`,
      { path: '/querystring/split', allowed });

    let rows: { x: Uint8Array | Float32Array; y: ArrayLike<number>; n: number };
    let meta: { inputShape: number[]; classNames: string[] };
    if (id === 'fashion-mnist') {
      if (split !== 'test') throw unavailable(['test']);
      const raw = await loadFashionMnistTestImages();
      rows = { x: raw.images, y: raw.labels, n: raw.n };
      meta = listBuiltinDatasets().find((d) => d.id === id)!;
    } else if (isBuiltinDataset(id)) {
      throw unavailable([]);
    } else {
      const ds = await services.datasets.load(request.tenant, id);
      if (!ds) throw notFound('dataset', id);
      const source = split === 'test' ? ds.test : ds.train;
      if (!source) throw unavailable(['train']);
      rows = source;
      meta = ds;
    }
    if (offset >= rows.n) {
      throw new HttpError(400, 'OFFSET_OUT_OF_RANGE', `/querystring/offset: ${offset} is past the last row (${rows.n} rows)`, {
        path: '/querystring/offset', maximum: rows.n - 1,
      });
    }
    const features = meta.inputShape.reduce((a, b) => a * b, 1);
    const samples = [];
    for (let i = offset; i < Math.min(rows.n, offset + limit); i++) {
      samples.push({ index: i, label: rows.y[i]!, features: Array.from(rows.x.subarray(i * features, (i + 1) * features)) });
    }
    return { datasetId: id, split, offset, total: rows.n, inputShape: meta.inputShape, classNames: meta.classNames, samples };
  });
};
