/** openapi/openapi.json is generated from the routes (npm run openapi); this fails when it is stale. */
import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { buildApp } from '../../src/server/app.js';
import { REDIS_URL } from './helpers.js';

it('matches the routes', async () => {
  const app = await buildApp(loadConfig({}, { redisUrl: REDIS_URL, logLevel: 'warn' }));
  await app.ready();
  const generated = JSON.parse(JSON.stringify(app.swagger()));
  await app.close();
  const committed = JSON.parse(readFileSync(new URL('../../openapi/openapi.json', import.meta.url), 'utf8'));
  expect(generated, 'openapi/openapi.json is stale: run `npm run openapi`').toEqual(committed);
});
