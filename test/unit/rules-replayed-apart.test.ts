/**
 * A replayed event's run older than the rule's current run, whose delays end before the current
 * run's event (as it would have run live): it runs to its end beside it, its waits stored apart,
 * and leaves nothing stored. Until review "diff27" each delay saved apart under a key of its own and
 * the earlier ones were never removed: the next start ran their actions again.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { AppEventMessage, HubEvent } from '../../proto/app.js';
import { encodeBus } from '../../src/protocol/codec.js';
import { MemoryPendingRuns } from '../../src/ports/pending-runs/pending-runs-memory.js';
import { validateRuleSpec } from '../../src/rules/validate.js';
import { RecordingMarks, rig, warmPool, type Rig } from './rules-fixtures.js';

const pool = warmPool();
let r: Rig;
afterEach(async () => {
  await r?.close();
});
const T0 = Date.UTC(2024, 6, 1, 12);
const alarm = (level: number, ts: number): HubEvent => ({ kind: 'event', home: 'home1', hub: 'home1-hub', device: 'sensor', event: 'alarm', params: { level }, ts });
function stored(offset: number, event: HubEvent, at: number) {
  const msg = { op: 'evt', ...event } as AppEventMessage;
  return { offset, data: encodeBus(msg), at };
}
const RULE = {
  name: 'Leak',
  triggers: [{ type: 'event', hub: 'home1-hub', device: 'sensor', event: 'alarm' }],
  actions: [
    { type: 'notify', title: 'A', body: 'level {{ event.params.level }}' },
    { type: 'delay', ms: 10_000 },
    { type: 'notify', title: 'B', body: 'level {{ event.params.level }}' },
    { type: 'delay', ms: 10_000 },
    { type: 'notify', title: 'C', body: 'level {{ event.params.level }}' },
  ],
};

describe('a replayed run older than the current one', () => {
  it('leaves no entry behind once it has run to its end', async () => {
    const runs = new MemoryPendingRuns();
    const marks = new RecordingMarks([{ homeId: 'home1', entries: [stored(1, alarm(1, T0 - 50_000), T0 - 50_000)] }]);
    r = rig(pool(), T0, { marks, pendingRuns: runs });
    await r.store.createRule('home1', validateRuleSpec(RULE));
    r.engine.onEvent(alarm(2, T0), undefined, 2); // live, newer
    await r.settle();
    const { report } = await r.engine.replayUnevaluated(); // a dead node's older event
    await report;
    await r.settle();
    for (let i = 0; i < 4; i++) {
      r.advance(10_100);
      await r.settle();
    }
    // both runs whole: the replayed one's 20 s of delays ended before the live event, 50 s later
    expect(r.pushes.map((p) => `${p.notification.title} ${p.notification.body}`).sort()).toEqual(['A level 1', 'A level 2', 'B level 1', 'B level 2', 'C level 1', 'C level 2']);
    expect(await runs.load()).toEqual([]);
    const engine = await r.restart();
    expect(await engine.resumePending()).toMatchObject({ armed: 0, late: 0 });
  });
});
