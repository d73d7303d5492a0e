/**
 * An app connection's commands in flight are capped (app-session.ts `maxCommandsInFlight`, 64 by
 * default): past it `busy`, and a command is taken again once one is answered. Until a mutation
 * review of 2026-12-06 no test held the cap.
 */
import { expect, it } from 'vitest';
import type { AppEndMessage, AppReply } from '../../proto/app.js';
import { AppSession, type AppLink, type FeedSubscriber } from '../../src/actors/app-session.js';
import { TimerWheel } from '../../src/actors/timer-wheel.js';
import { createLogger } from '../../src/log/logger.js';
import { sharedSampledLog } from '../../src/log/sampler.js';
import { CommandError } from '../../src/errors.js';

class Link implements AppLink {
  open = true;
  readonly sent: Array<AppReply | AppEndMessage> = [];
  reply(msg: AppReply | AppEndMessage): void {
    this.sent.push(msg);
  }
  subscriber(): FeedSubscriber {
    throw new Error('not used');
  }
  leave(): void {}
  closeAfterReplies(): void {
    this.open = false;
  }
}

/** A user's session on `link` whose commands wait until the test answers them (`hanging`), with `deps` over the defaults. */
function hangingSession(link: Link, name: string, deps: { maxCommandsInFlight?: number; sendCommand?: () => Promise<unknown> } = {}) {
  const hanging: Array<(v: unknown) => void> = [];
  const session = new AppSession(
    { kind: 'user', sub: 'ann', homes: new Set(['h1']) },
    link,
    {
      system: { timers: new TimerWheel(), log: createLogger('silent'), mailboxSize: 1_000 },
      feeds: { acquire() {}, release() {}, position: () => null, catchUp: async () => true },
      sendCommand: () => new Promise((r) => hanging.push(r)),
      homeOf: async () => 'h1',
      commandTimeoutMs: 60_000,
      maxSubscriptions: 4,
      ...deps,
    },
    name,
  );
  return { session, hanging };
}

it('answers busy past maxCommandsInFlight, and takes a command again once one is answered', async () => {
  const link = new Link();
  const { session: s, hanging } = hangingSession(link, 'app:cap', { maxCommandsInFlight: 3 });
  for (let id = 1; id <= 4; id++) s.tell({ type: 'request', request: { op: 'cmd', id, hub: 'hub-1', device: 'd', method: 'm' } });
  await expect.poll(() => hanging.length).toBe(3);
  expect(link.sent).toMatchObject([{ op: 'err', id: 4, code: 'busy' }]);
  hanging[0]!('done');
  await expect.poll(() => link.sent.length).toBe(2);
  s.tell({ type: 'request', request: { op: 'cmd', id: 5, hub: 'hub-1', device: 'd', method: 'm' } });
  await expect.poll(() => hanging.length).toBe(4);
});

it("refuses a command whose id is that of one still waiting for its answer, invalid_field, not run; the id is free again once answered (review \"commands\")", async () => {
  const link = new Link();
  const { session: s, hanging } = hangingSession(link, 'app:dup');
  const cmd = (id: number) => s.tell({ type: 'request', request: { op: 'cmd', id, hub: 'hub-1', device: 'lock', method: 'unlock' } });
  cmd(7);
  await expect.poll(() => hanging.length).toBe(1);
  cmd(7);
  await expect.poll(() => link.sent.length).toBe(1);
  expect(link.sent).toMatchObject([{ op: 'err', id: 7, code: 'invalid_field', field: 'id' }]);
  hanging[0]!('unlocked');
  await expect.poll(() => link.sent.length).toBe(2);
  expect(link.sent[1]).toMatchObject({ op: 'ok', id: 7, result: 'unlocked' });
  cmd(7);
  await expect.poll(() => hanging.length).toBe(2);
});

it("logs a socket's failed commands sampled per code node-wide: a flood of refusals writes ten lines and a summary (review logs: 5,000 lines a second)", async () => {
  const lines: Array<{ msg: string; code?: string; skipped?: number }> = [];
  const log = createLogger('info', {}, { write: (l: string) => lines.push(JSON.parse(l) as { msg: string }) });
  const link = new Link();
  const s = new AppSession(
    { kind: 'user', sub: 'ann', homes: new Set(['h1']) },
    link,
    {
      system: { timers: new TimerWheel(), log, mailboxSize: 10_000 },
      feeds: { acquire() {}, release() {}, position: () => null, catchUp: async () => true },
      sendCommand: async () => 'never',
      // a hub of another home: every command refused forbidden
      homeOf: async () => 'h2',
      commandTimeoutMs: 60_000,
      maxSubscriptions: 4,
      maxCommandsInFlight: 1_000,
    },
    'app:flood',
  );
  for (let id = 1; id <= 500; id++) s.tell({ type: 'request', request: { op: 'cmd', id, hub: 'hub-x', device: 'd', method: 'm' } });
  await expect.poll(() => link.sent.length).toBe(500);
  expect(link.sent.every((m) => m.op === 'err' && m.code === 'forbidden')).toBe(true);
  expect(lines.filter((l) => l.msg === 'app command failed')).toHaveLength(10);
  sharedSampledLog(log, 'app command failures not logged', 'code').flush(true);
  expect(lines.filter((l) => l.msg === 'app command failures not logged')).toMatchObject([{ code: 'forbidden', skipped: 490 }]);
});

it("carries a failed command's detail to the app: hubCode, hubTemporary, and sent: false for a session_closed whose command the hub's session never sent (safe to send again)", async () => {
  const failures = [
    new CommandError('session_closed', 'the session is closing', { unsent: true }),
    new CommandError('session_closed', 'the node moved the hub away before it answered', { hubMoving: true }),
    new CommandError('command_failed', 'busy', { hubCode: 'busy', hubTemporary: true }),
  ];
  const link = new Link();
  const { session: s } = hangingSession(link, 'app:detail', { sendCommand: () => Promise.reject(failures.shift()) });
  for (let id = 1; id <= 3; id++) s.tell({ type: 'request', request: { op: 'cmd', id, hub: 'hub-1', device: 'd', method: 'm' } });
  await expect.poll(() => link.sent.length).toBe(3);
  const byId = new Map(link.sent.map((m) => [(m as { id: number }).id, m]));
  expect(byId.get(1)).toMatchObject({ op: 'err', code: 'session_closed', sent: false });
  expect(byId.get(2)).toMatchObject({ op: 'err', code: 'session_closed' });
  expect(byId.get(2)).not.toHaveProperty('sent');
  expect(byId.get(3)).toMatchObject({ op: 'err', code: 'command_failed', hubCode: 'busy', hubTemporary: true });
  expect(byId.get(3)).not.toHaveProperty('sent');
});
