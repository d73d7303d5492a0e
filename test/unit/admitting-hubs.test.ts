import { expect, it } from 'vitest';
import { AdmittingHubs } from '../../src/transport/admitting-hubs.js';
import type { HubRecord } from '../../src/ports/hub-registry/hub-registry.js';

const record: HubRecord = { hubId: 'h', homeId: 'home', model: undefined, secret: 's', enabled: true, createdAt: 1 };

it('hands the decision to the open its upgrade calls, and only to it', () => {
  const hubs = new AdmittingHubs<string>(100);
  const decision = Promise.resolve(record);
  let taken: Promise<HubRecord> | null = null;
  expect(hubs.upgrade(decision, () => (taken = hubs.take('a')))).toBe(true);
  expect(taken).toBe(decision);
  expect(hubs.has('a')).toBe(true);
  // an open with no upgrade under way gets none
  expect(hubs.take('b')).toBeNull();
  expect(hubs.has('b')).toBe(false);
});

it('says so when no open took the decision, and a refusal then is not left unhandled', async () => {
  const hubs = new AdmittingHubs<string>(100);
  const refused = Promise.reject(new Error('nonce_reused'));
  expect(hubs.upgrade(refused, () => {})).toBe(false);
  // the next open is not handed the stale decision
  expect(hubs.take('late')).toBeNull();
  await new Promise((r) => setImmediate(r));
});

it('holds frames in order until released: at most 8, and twice the frame limit in bytes; a frame over the limit as a stand-in', () => {
  const hubs = new AdmittingHubs<string>(100);
  hubs.upgrade(Promise.resolve(record), () => hubs.take('a'));
  expect(hubs.hold('a', Uint8Array.of(1), true)).toBe(true);
  expect(hubs.hold('a', new TextEncoder().encode('text'), false)).toBe(true);
  // over the 100-byte limit: held without its bytes, so it counts nothing against the bound
  expect(hubs.hold('a', new Uint8Array(5_000), true)).toBe(true);
  expect(hubs.hold('a', new Uint8Array(100), true)).toBe(true);
  expect(hubs.hold('a', new Uint8Array(100), true), 'over 200 bytes held').toBe(false);
  const held = hubs.release('a');
  expect(held.map((f) => [f.binary, f.bytes.length])).toEqual([
    [true, 1],
    [false, 0],
    [true, 101],
    [true, 100],
  ]);
  expect(hubs.has('a')).toBe(false);
  expect(hubs.hold('a', Uint8Array.of(1), true), 'not being admitted').toBe(false);

  hubs.upgrade(Promise.resolve(record), () => hubs.take('b'));
  for (let i = 0; i < 8; i++) expect(hubs.hold('b', Uint8Array.of(i), true)).toBe(true);
  expect(hubs.hold('b', Uint8Array.of(9), true), 'a ninth').toBe(false);
});

it('copies what it holds: uWS reuses a message’s memory once its callback returns', () => {
  const hubs = new AdmittingHubs<string>(100);
  hubs.upgrade(Promise.resolve(record), () => hubs.take('a'));
  const bytes = Uint8Array.of(1, 2, 3);
  hubs.hold('a', bytes, true);
  bytes.fill(0);
  expect([...hubs.release('a')[0]!.bytes]).toEqual([1, 2, 3]);
});
