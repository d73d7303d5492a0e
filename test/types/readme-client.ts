/**
 * README's example of the client library (section "App client library"), from its import to the
 * line before `void result` exactly as README shows it: `tsc --noEmit` compiles it against the package export,
 * `test/unit/client-readme.test.ts` checks README still holds it; `test/integration/client.test.ts` runs it.
 */
declare function fetchToken(): Promise<string>;
declare function render(event: unknown): void;
declare function reloadHome(home: string, reason: string): void;

import { ClientError, HubtierClient } from 'hubtier/client';
import WebSocket from 'ws'; // Node 20; in a browser leave the option out

const client = new HubtierClient({ url: 'wss://hubs.example.com', token: () => fetchToken(), WebSocket });
client.onState((s) => console.log(s.state)); // open, closed (code, reason, next attempt), connecting: the first attempt began in the constructor (its `onState` option hears it)
client.subscribe('home-1', {
  onEvent: (event) => render(event), // typed: state, event, devices, online, offline, removed; in order, once
  onReload: ({ reason }) => reloadHome('home-1', reason), // history reset or trimmed: fetch the snapshot
});
const result = await client
  .command('hub-7', 'lamp', { set: { on: true } }, { timeoutMs: 3_000 })
  .catch((err: ClientError) => err); // err.code of proto/errors.ts (hub_offline, command_timeout, …), err.temporary
void result; // not in README: the example ends above
