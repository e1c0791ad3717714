// Writes openapi/openapi.json from the routes' schemas (`npm run openapi`, after a build).
// Uses the default settings, so the document does not depend on the environment;
// test/api/openapi.test.ts fails when the committed file is stale.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../dist/src/config.js';
import { buildApp } from '../dist/src/server/app.js';

const file = path.resolve(import.meta.dirname, '..', 'openapi', 'openapi.json');
const app = await buildApp(loadConfig({}, { redisUrl: process.env.REDIS_URL || 'redis://127.0.0.1:6379', logLevel: 'warn' }));
await app.ready();
writeFileSync(file, JSON.stringify(app.swagger(), null, 2) + '\n');
await app.close();
console.log(`wrote ${path.relative(process.cwd(), file)}`);
