import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    // integration suites start server processes; they wait on events, these are only ceilings
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
