/**
 * NormLab on a real Sentinel group (one primary, one replica, three
 * sentinels, started here on loopback ports): the API and worker subset of
 * ./topology-suite.ts.
 */
import { apiSuite } from './topology-suite.js';
import { SentinelServers } from '../redis-servers.mjs';

apiSuite('redis-sentinel', () => SentinelServers.start());
