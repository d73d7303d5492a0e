/**
 * On the embedded default's stores (LMDB), a hub's admission settles in its caller's turn, admitted
 * or refused: the hub gateway then answers the upgrade inside uWS's upgrade callback, not through
 * `res.cork` from a later turn, which in the uWS v20.30 binaries can close the new socket right
 * after `open` (uNetworking/uWebSockets#1928). It fails while the nonce claim waits for its commit.
 */
import { afterAll, expect, it } from 'vitest';
import { HubAdmission } from '../../src/auth/hub-admission.js';
import { hubCredentials } from '../../src/auth/hub-signature.js';
import { LmdbHubRegistry, LmdbNonceStore } from '../../src/ports/hub-registry/hub-registry-lmdb.js';
import { tempDataStore } from '../contract/fixtures/data-store.js';
import { settledIn } from '../helpers/settled-in.js';

const tmp = await tempDataStore('commit');
const registry = new LmdbHubRegistry(tmp.data);
const nonces = new LmdbNonceStore(tmp.data);
afterAll(async () => {
  await Promise.all([nonces.close(), registry.close()]);
  await tmp.remove();
});


it('admits, and refuses a replay, a wrong secret and an unknown hub, each in the caller’s turn', async () => {
  await registry.create({ hubId: 'turn-hub', homeId: 'turn-home', model: undefined, secret: 'turn-secret', enabled: true, createdAt: 1 });
  const admission = new HubAdmission(registry, nonces, 300);
  // what the hub gateway reads to answer inside uWS's callback (else it admits after the upgrade)
  expect(admission.inTurn).toBe(true);
  const credentials = hubCredentials('turn-hub', 'turn-secret');
  const admitted = admission.admit(credentials);
  expect(await settledIn(admitted)).toBe('this turn');
  expect((await admitted).hubId).toBe('turn-hub');
  const replay = admission.admit(credentials);
  expect(await settledIn(replay)).toBe('this turn');
  await expect(replay).rejects.toMatchObject({ code: 'nonce_reused' });
  for (const c of [hubCredentials('turn-hub', 'other-secret'), hubCredentials('no-such-hub', 'turn-secret')]) expect(await settledIn(admission.admit(c))).toBe('this turn');
});
