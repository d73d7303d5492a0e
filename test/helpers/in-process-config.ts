import { createHash } from 'node:crypto';
import { loadConfig, type Config } from '../../src/config/config.js';

/**
 * The configuration of a node started inside a test process: free ports, silent, data in memory.
 * Nodes given one admin token share the key that seals hub secrets, as nodes of a cluster must
 * (a test may give two nodes one registry).
 */
export function inProcessConfig(adminToken: string, jwtSecret: string, env: Record<string, string> = {}): Config {
  return loadConfig({
    PORT: '0',
    ADMIN_PORT: '0',
    HOST: '127.0.0.1',
    ADMIN_TOKEN: adminToken,
    JWT_SECRET: jwtSecret,
    LOG_LEVEL: 'silent',
    DATA_DIR: ':memory:',
    TIER_SECRET_KEY: createHash('sha256').update(`in-process-secret-key:${adminToken}`).digest('hex'),
    ...env,
  }).config;
}
