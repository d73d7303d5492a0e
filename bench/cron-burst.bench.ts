/**
 * One minute of N homes' 07:00 cron rules on the embedded store (DATA_SYNC=commit): seconds from the
 * scheduler's tick to the last firing handed to the engine (the engine is a counter here: the rule
 * pool's evaluations are not in it). ROOT is a checkout to measure (another worktree for "before").
 *
 *   node --import tsx bench/cron-burst.bench.ts [ROOT] [N]      (defaults: this checkout, 2000)
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const root = process.argv[2] ?? new URL('..', import.meta.url).pathname.replace(/\/$/, '');
const n = Number(process.argv[3] ?? 2000);
const { openDataStore } = await import(`${root}/src/ports/lmdb.ts`);
const { LmdbRuleStore } = await import(`${root}/src/ports/rule-store/rule-store-lmdb.ts`);
const { MemoryLease } = await import(`${root}/src/ports/lease/lease-memory.ts`);
const { CronScheduler } = await import(`${root}/src/rules/scheduler.ts`);
const { validateRuleSpec } = await import(`${root}/src/rules/validate.ts`);
const { createLogger } = await import(`${root}/src/log/logger.ts`);
const clock = { now: Date.UTC(2026, 0, 5, 6, 59, 30) };
const data = openDataStore(mkdtempSync(join(tmpdir(), 'burst-')), { sync: 'commit' });
const store = await LmdbRuleStore.open(data, { now: () => clock.now });
const spec = validateRuleSpec({ name: 'Good morning', triggers: [{ type: 'cron', cron: '0 7 * * *', catchUpMs: 3_600_000 }], actions: [{ type: 'notify', title: 'Morning', body: 'hi' }] });
for (let i = 0; i < n; i++) await store.createRule(`home-${i}`, spec);
let fired = 0;
const s = new CronScheduler({ store, lease: new MemoryLease({ now: () => clock.now }), nodeId: 'n', fire: async () => void fired++, log: createLogger('silent'), now: () => clock.now });
await s.tick();
clock.now += 31_000;
const t = performance.now();
await s.tick();
console.log(`${root}: ${n} rules of one minute fired in ${((performance.now() - t) / 1000).toFixed(2)} s (${fired} fired)`);
await s.stop();
await store.close?.();
await data.close();
