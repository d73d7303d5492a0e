import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    pool: 'forks',
    // finds (or installs) nats-server and redis-server before any suite; see test/global-setup.ts
    globalSetup: ['test/global-setup.ts'],
    // integration suites start server processes; they wait on events, these are only ceilings
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // unit and contract suites first, two at a time (one per core: Vitest's default on two cores
    // is one); then the integration suites one at a time, as before: their server processes and
    // load want the machine to themselves
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts', 'test/contract/**/*.test.ts'], maxWorkers: 2, sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'integration', include: ['test/integration/**/*.test.ts'], maxWorkers: 1, sequence: { groupOrder: 1 } } },
    ],
  },
});
