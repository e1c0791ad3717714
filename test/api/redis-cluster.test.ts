/**
 * NormLab on a real Redis Cluster (3 primaries, 3 replicas, started here on
 * loopback ports): the API and worker subset of ./topology-suite.ts.
 */
import { apiSuite } from './topology-suite.js';
import { RedisClusterServers } from '../redis-servers.mjs';

apiSuite('redis-cluster', () => RedisClusterServers.start());
