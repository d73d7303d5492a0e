/**
 * The leak alarm of the rules-after-crash tests: a hub whose valve never answers `close`, so the
 * rule's run is inside its first action (before its `notify`) for as long as the node lives.
 */
import { FrameType, type CommandFrame } from '../../proto/frames.js';
import type { HubClient } from '../../load/wire/hub-client.js';

/** The log line of a rule's notification titled `title`, as the logging push sender writes it. */
export const pushed = (title: string) => (l: Record<string, unknown>) => l.msg === 'push notification (no push service configured: logged)' && l.title === title;

/** The leak rule's notification's log line. */
export const pushedLeak = pushed('Water leak');

/** Waits for the `close` command the leak rule sends `hub`. */
export const valveClose = (hub: HubClient, ms: number) => hub.waitFor((f) => f.t === FrameType.command && (f as CommandFrame).m === 'close', ms);

/**
 * Connects `hub` (its valve never answering), creates the leak rule with `createRule` (the admin
 * API's POST of a rule in the hub's home), sends the alarm and resolves once the node acknowledged
 * it (the event is stored) and the rule's `close` is out (its run has begun).
 */
export async function alarmWithStuckValve(hub: HubClient, hubId: string, createRule: (body: unknown) => Promise<{ status: number }>): Promise<void> {
  hub.onCommand((cmd) => (cmd.m === 'close' ? new Promise(() => undefined) : hub.defaultHandler(cmd)));
  await hub.connect();
  await hub.report({ sensor: { wet: false }, valve: { open: true } });
  const rule = await createRule({
    name: 'Leak',
    triggers: [{ type: 'event', hub: hubId, device: 'sensor', event: 'alarm' }],
    actions: [
      { type: 'command', hub: hubId, device: 'valve', method: 'close', timeoutMs: 30_000 },
      { type: 'notify', title: 'Water leak', body: 'level {{ event.params.level }}' },
    ],
  });
  if (rule.status !== 201) throw new Error(`the leak rule was not created: ${rule.status}`);
  // waited for before the event is sent: the rule may begin before the event's ack comes back
  const closing = valveClose(hub, 30_000);
  await hub.event('sensor', 'alarm', { level: 3 });
  await closing;
}
