import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    // finds (or installs) nats-server and redis-server before any suite; see test/global-setup.ts
    globalSetup: ['test/global-setup.ts'],
    // integration suites start server processes; they wait on events, these are only ceilings
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
