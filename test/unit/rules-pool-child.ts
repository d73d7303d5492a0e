/**
 * Run as `node --import tsx test/unit/rules-pool-child.ts`: proves the pool's TypeScript worker
 * loads in a process started the way the server is started. Prints one JSON line.
 */
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { RulePool, workerExecArgv } from '../../src/rules/pool.js';

const timers = new TimerWheel();
const pool = new RulePool({ timers, threads: 1 });
const result = await pool.evaluate({
  homeId: 'child-home',
  homeVersion: 1,
  timeZone: 'UTC',
  now: Date.UTC(2024, 0, 1, 12),
  rules: [
    {
      id: 'r1',
      homeId: 'child-home',
      version: 1,
      createdAt: 0,
      updatedAt: 0,
      name: 'child',
      enabled: true,
      triggers: [{ type: 'state', attr: 'on' }],
      devices: {},
      conditions: ['time.hour == 12'],
      actions: [{ type: 'command', hub: 'h', device: 'd', set: { on: true } }],
      cooldownMs: 0,
      limit: { maxRuns: 10, windowMs: 60_000 },
    },
  ],
  event: { kind: 'state', hub: 'h', device: 'd', attrs: { on: true }, ts: 0 },
  prev: {},
  state: {},
});
process.stdout.write(`${JSON.stringify({ execArgv: process.execArgv, added: workerExecArgv('x.ts') ?? null, passed: result.outcomes[0]?.passed })}\n`);
await pool.close();
timers.close();
