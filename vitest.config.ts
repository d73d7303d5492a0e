import { defineConfig } from 'vitest/config';

/** Integration suites that spend their time waiting on one server process, not on the CPU. */
const WAITING = [
  'admission', 'admission-after-upgrade', 'admission-outage', 'asyncapi-stream', 'audit', 'bull-board', 'command-size', 'data-redis-import',
  'desired-limits', 'durable-default', 'event-stream-consumer', 'hostile-input', 'observability', 'readiness', 'readiness-cluster',
  'cluster-rules-after-crash', 'cluster-secrets', 'forged-handshakes', 'rules', 'rules-after-crash', 'rules-fairness', 'takeover-acks',
  'docs-pipelining', 'hub-frame-rules', 'redis-hung', 'disk-full', 'client-expiry', 'openapi-examples',
  'backend-start-wait', 'backend-credentials', 'push-worker-redis', 'client', 'desired-overflow', 'hub-leaves-home', 'logs', 'memory-cgroup', 'rules-redis-outage', 'outage-lines', 'security-headers', 'traces',
  // one node (or an in-process one, or a stand-in) each, timing no stall and no backpressure limit: they ran alone for nothing
  'redis-dies-mid-append', 'lean-hubs', 'load-apps', 'npm-start', 'desired-after-welcome', 'shadow-read-budget',
  // nodes that wait on a nats-server, a redis-server or a proxy's cut, timing nothing: 53 s of the serial group (2026-12-07)
  'fleet', 'fleet-outage', 'push-queue-bullmq', 'home-data',
  // a webhook receiver's retries (lower bounds only) and a recovery's seams, nodes that wait: 20 s of the serial group (2026-12-07)
  'push-webhook', 'recovery',
  // one node whose disk syncs slowly (an LD_PRELOAD shim): it counts syncs, it times nothing
  'slow-disk',
  // CPU-bound but timing nothing of their own: beside the waiting suites, not after them (the suite had passed 600 s, 2026-12-07)
  'build', 'docs-browser', 'console-browser',
  // nodes that wait (heartbeat and idle timers, a frozen Redis, a drain, signals), bounds far from what they time under
  // load (review "flaky": 5/5 beside two busy loops; listen-file-limit's share 0.03 against 0.5): 40 s of the serial group
  'hub-sessions', 'listen-file-limit', 'node-freezes-mid-append', 'drain-late-hello', 'stop-signals',
  // nodes that wait (a frozen node, a drain, a hub answering late; counts, no time measured): 10 s of the serial group (2026-12-07)
  'command-deadline', 'scene-many-commands',
  // one node, an app socket's request budget at 1 a second (counts, no time measured); one node killed and started again
  'app-request-rate', 'recovery-after-crash',
].map((name) => `test/integration/${name}.test.ts`);
/** Suites that replace a module (vi.mock): a module another file of the same worker loaded first would not be replaced. They run beside the waiting ones (a group's projects share its worker count). */
const MOCKING = ['harness-ports', 'openapi-cached'].map((name) => `test/integration/${name}.test.ts`);

export default defineConfig({
  test: {
    pool: 'forks',
    // finds (or installs) nats-server and redis-server before any suite; see test/global-setup.ts
    globalSetup: ['test/global-setup.ts'],
    // integration suites start server processes; they wait on events, these are only ceilings
    testTimeout: 30_000,
    // expect.poll waits 1 s by default: a server process starved for a second failed it; the test's timeout is the ceiling (review "flaky")
    expect: { poll: { timeout: 20_000 } },
    hookTimeout: 30_000,
    // unit and contract suites first, two at a time (one per core: Vitest's default on two cores
    // is one); then the integration suites whose servers mostly wait (timers, a rule's delay, a
    // restart), four at a time (their processes sleep more than they run: two at a time, their
    // 358 s took half of a 703 s run; at four the group used 1.8 of the 2 cores, 231 s, 2026-12-05); then the rest one at a time: load, chaos, fuzz, browsers, several
    // nodes, and the tests that time a stall or a backpressure limit want the machine to themselves.
    // A worker runs its files one after another in one process (isolate: false): a fresh process per
    // file spent ~1 s importing for each of 200 files, a quarter of the run; every suite closes what it opens
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/unit/**/*.test.ts', 'test/contract/**/*.test.ts'], maxWorkers: 2, isolate: false, sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'integration-waiting', include: WAITING, maxWorkers: 4, isolate: false, sequence: { groupOrder: 1 } } },
      { extends: true, test: { name: 'integration-mocking', include: MOCKING, maxWorkers: 4, sequence: { groupOrder: 1 } } },
      { extends: true, test: { name: 'integration', include: ['test/integration/**/*.test.ts'], exclude: [...WAITING, ...MOCKING], maxWorkers: 1, isolate: false, sequence: { groupOrder: 2 } } },
    ],
  },
});
