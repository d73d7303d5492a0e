/**
 * Compile-time checks of the client library's public types, as docs/client.md describes them:
 * `npx tsc --noEmit` (the first step of `npm test`) fails when one no longer holds, including an
 * `@ts-expect-error` that stops being an error. Never run.
 */
import { ClientError, HubtierClient, type AppEventMessage, type CommandBody, type ConnectionState, type Position } from '../../src/client/index.js';

declare const client: HubtierClient;
declare const stored: Position;

client.subscribe(
  'home-0',
  {
    onEvent(e: AppEventMessage) {
      if (e.kind === 'offline') void (e.reason satisfies string);
      // @ts-expect-error a state event has no `reason`
      if (e.kind === 'state') void e.reason;
      void (e.pos?.offset satisfies number | undefined);
    },
    onReload({ reason, pos }) {
      void (reason satisfies 'epoch_changed' | 'too_old' | 'unavailable');
      void (pos satisfies Position | null);
    },
  },
  { since: stored },
);
// @ts-expect-error since is a position, not an offset
client.subscribe('home-0', { onEvent() {} }, { since: 42 });

void (client.state satisfies ConnectionState);
client.command('h', 'd', { set: { on: true } }).catch((e: unknown) => e instanceof ClientError && (e.temporary satisfies boolean));
client.command('h', 'd', { method: 'calibrate', params: { steps: 3 } });
client.command('h', 'd', { method: 'reboot' });

// @ts-expect-error set and method together are not a CommandBody (the server refuses them: invalid_field)
client.command('h', 'd', { set: { on: true }, method: 'x' });
// @ts-expect-error params belong to a method
export const setWithParams: CommandBody = { set: { on: true }, params: { steps: 3 } };
// @ts-expect-error one of set or method is needed
export const neither: CommandBody = {};

