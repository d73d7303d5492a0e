/**
 * Handshakes per hub (TIER_HUB_HELLOS_PER_MIN): a burst, then one per refill; counted only once the
 * signature verifies (a forger spends nothing of a hub's rate) and before the nonce is stored (a hub
 * over its rate leaves no nonce); other hubs unaffected; the buckets of quiet hubs forgotten.
 */
import { describe, expect, it } from 'vitest';
import { HelloRate } from '../../src/auth/hello-rate.js';
import { HubAdmission } from '../../src/auth/hub-admission.js';
import { hubCredentials } from '../../src/auth/hub-signature.js';
import { MemoryHubRegistry, MemoryNonceStore } from '../../src/ports/hub-registry/hub-registry-memory.js';

describe('HelloRate', () => {
  it('a burst, then one per refill; each hub its own; full buckets forgotten', () => {
    let now = 0;
    const rate = new HelloRate({ burst: 3, everyMs: 1_000, now: () => now });
    const hello = (hubId: string) => rate.take(hubId);
    expect([1, 2, 3, 4].map(() => hello('a'))).toEqual([true, true, true, false]);
    expect(rate.waitMs('a')).toBe(1_000);
    expect(hello('b')).toBe(true);
    expect(rate.waitMs('b')).toBe(0);
    now = 999;
    expect(rate.waitMs('a')).toBe(1);
    expect(hello('a')).toBe(false);
    now = 1_000;
    expect([hello('a'), hello('a')]).toEqual([true, false]);
    expect(HelloRate.perMinute(0)).toBeUndefined();
    now = 10_000;
    hello('c');
    expect(rate.size).toBe(1);
  });
});

describe('HubAdmission with a hello rate', () => {
  it('refuses rate_limited past the rate, storing no nonce; a forged or replayed hello spends nothing of it', async () => {
    const now = 1_700_000_000_000;
    const registry = new MemoryHubRegistry();
    for (const hubId of ['r-hub', 'r-other']) await registry.create({ hubId, homeId: 'r-home', model: undefined, secret: `${hubId}-secret`, enabled: true, createdAt: 1 });
    const nonces = new MemoryNonceStore(() => now);
    const claimed: string[] = [];
    const claim = nonces.claim.bind(nonces);
    nonces.claim = (key, ttlMs) => (claimed.push(key), claim(key, ttlMs));
    const admission = new HubAdmission(registry, nonces, 300, () => now, undefined, 0, new HelloRate({ burst: 2, everyMs: 60_000, now: () => now }));
    const outcome = (c: ReturnType<typeof hubCredentials>) => admission.admit(c).then(() => 'admitted', (err: { code: string }) => err.code);
    expect(await outcome({ ...hubCredentials('r-hub', 'r-hub-secret', now), signature: '0'.repeat(64) })).toBe('bad_signature');
    const first = hubCredentials('r-hub', 'r-hub-secret', now);
    expect(await outcome(first)).toBe('admitted');
    // replays of a captured hello are refused by the nonce and spend nothing of the hub's rate
    for (let i = 0; i < 5; i++) expect(await outcome(first)).toBe('nonce_reused');
    expect(await outcome(hubCredentials('r-hub', 'r-hub-secret', now))).toBe('admitted');
    expect(claimed).toHaveLength(7);
    expect(await outcome(hubCredentials('r-hub', 'r-hub-secret', now))).toBe('rate_limited');
    // its refusal says when the next hello is allowed (Retry-After, or `reconnect.after` after an upgrade)
    await expect(admission.admit(hubCredentials('r-hub', 'r-hub-secret', now))).rejects.toMatchObject({ code: 'rate_limited', retryAfterMs: 60_000 });
    expect(claimed).toHaveLength(7);
    expect(await outcome(hubCredentials('r-other', 'r-other-secret', now))).toBe('admitted');
  });

  it('hellos arriving together each take one: no more than the rate is admitted while nonce claims wait on their store', async () => {
    const now = 1_700_000_000_000;
    const registry = new MemoryHubRegistry();
    await registry.create({ hubId: 'c-hub', homeId: 'c-home', model: undefined, secret: 'c-hub-secret', enabled: true, createdAt: 1 });
    const nonces = new MemoryNonceStore(() => now);
    // a store answering in a later turn, as Redis does
    const claim = nonces.claim.bind(nonces);
    nonces.claim = async (key, ttlMs) => (await new Promise((r) => setTimeout(r, 5)), claim(key, ttlMs));
    const admission = new HubAdmission(registry, nonces, 300, () => now, undefined, 0, new HelloRate({ burst: 3, everyMs: 60_000, now: () => now }));
    const outcomes = await Promise.all(Array.from({ length: 10 }, () => admission.admit(hubCredentials('c-hub', 'c-hub-secret', now)).then(() => 'admitted', (err: { code: string }) => err.code)));
    expect(outcomes.filter((o) => o === 'admitted')).toHaveLength(3);
    expect(outcomes.filter((o) => o === 'rate_limited')).toHaveLength(7);
  });
});
