import { describe, expect, it } from 'vitest';
import { HubAdmission } from '../../src/auth/hub-admission.js';
import { hubCredentials } from '../../src/auth/hub-signature.js';
import { isSealed, keyId, parseSecretKey, SecretBox } from '../../src/auth/secret-box.js';
import { MemoryHubRegistry, MemoryNonceStore } from '../../src/ports/hub-registry/hub-registry-memory.js';

const keyA = Buffer.alloc(32, 1);
const keyB = Buffer.alloc(32, 2);

describe('SecretBox', () => {
  it('seals so that the clear secret appears nowhere in the value, and opens it again', () => {
    const box = new SecretBox(keyA);
    const sealed = box.seal('hub-1', 'the-secret-of-hub-1');
    expect(sealed).toMatch(/^s1\.[0-9a-f]{8}\./);
    expect(sealed).not.toContain('the-secret-of-hub-1');
    expect(Buffer.from(sealed.split('.')[2]!, 'base64url').toString('latin1')).not.toContain('the-secret');
    expect(isSealed(sealed)).toBe(true);
    expect(box.open('hub-1', sealed)).toBe('the-secret-of-hub-1');
    // a fresh iv each time
    expect(box.seal('hub-1', 'the-secret-of-hub-1')).not.toBe(sealed);
  });

  it('refuses a sealed value moved to another hub, a damaged one, and one of a key it was not given', () => {
    const box = new SecretBox(keyA);
    const sealed = box.seal('hub-1', 'secret');
    expect(() => box.open('hub-2', sealed)).toThrow(/does not open/);
    // one character of the tag changed (the last but one: all of its bits are data)
    const at = sealed.length - 2;
    const flipped = sealed.slice(0, at) + (sealed[at] === 'A' ? 'B' : 'A') + sealed.slice(at + 1);
    expect(flipped).not.toBe(sealed);
    expect(() => box.open('hub-1', flipped)).toThrow(/does not open/);
    expect(() => new SecretBox(keyB).open('hub-1', sealed)).toThrow(new RegExp(`key ${keyId(keyA)}`));
  });

  it('rotates keys: opens values of older keys it is given, seals with the current one, says what needs resealing', () => {
    const old = new SecretBox(keyA).seal('hub-1', 'secret');
    const box = new SecretBox(keyB, [keyA]);
    expect(box.open('hub-1', old)).toBe('secret');
    expect(box.needsReseal(old)).toBe(true);
    const fresh = box.seal('hub-1', 'secret');
    expect(box.needsReseal(fresh)).toBe(false);
    expect(fresh.split('.')[1]).toBe(keyId(keyB));
  });

  it('reads a secret stored in clear before sealing existed as it is', () => {
    const box = new SecretBox(keyA);
    expect(isSealed('q3Zk0m1v8yXr2c9Tn4Ub7Wd6Ja5Le0Hf')).toBe(false);
    expect(box.open('hub-1', 'q3Zk0m1v8yXr2c9Tn4Ub7Wd6Ja5Le0Hf')).toBe('q3Zk0m1v8yXr2c9Tn4Ub7Wd6Ja5Le0Hf');
    expect(box.needsReseal('q3Zk0m1v8yXr2c9Tn4Ub7Wd6Ja5Le0Hf')).toBe(true);
  });

  it('parses keys as 64 hex digits or base64 of 32 bytes, and names the variable otherwise', () => {
    expect(parseSecretKey('01'.repeat(32), 'K')).toEqual(Buffer.alloc(32, 1));
    expect(parseSecretKey(Buffer.alloc(32, 1).toString('base64url'), 'K')).toEqual(Buffer.alloc(32, 1));
    expect(parseSecretKey(Buffer.alloc(32, 1).toString('base64'), 'K')).toEqual(Buffer.alloc(32, 1));
    expect(() => parseSecretKey('short', 'TIER_SECRET_KEY')).toThrow(/TIER_SECRET_KEY: expected 32 bytes/);
    expect(() => parseSecretKey('01'.repeat(31), 'TIER_SECRET_KEY')).toThrow(/TIER_SECRET_KEY/);
  });
});

describe('HubAdmission with sealed secrets and a rotation', () => {
  it('accepts the current secret, the previous one until its grace end and not after, and no other', async () => {
    let now = 1_700_000_000_000;
    const box = new SecretBox(keyA);
    const registry = new MemoryHubRegistry();
    const admission = new HubAdmission(registry, new MemoryNonceStore(() => now), 300, () => now, box);
    await registry.create({ hubId: 'hub-1', homeId: 'home', model: undefined, secret: box.seal('hub-1', 'old-secret'), enabled: true, createdAt: now });
    const admit = (secret: string) => admission.admit(hubCredentials('hub-1', secret, now));
    await expect(admit('old-secret')).resolves.toMatchObject({ hubId: 'hub-1' });
    await registry.rotateSecret('hub-1', box.seal('hub-1', 'new-secret'), now + 60_000);
    await expect(admit('new-secret')).resolves.toMatchObject({ secretVersion: 2 });
    await expect(admit('old-secret')).resolves.toMatchObject({ hubId: 'hub-1' });
    await expect(admit('wrong-secret')).rejects.toMatchObject({ code: 'bad_signature' });
    now += 60_000;
    await expect(admit('old-secret')).rejects.toMatchObject({ code: 'bad_signature' });
    await expect(admit('new-secret')).resolves.toMatchObject({ hubId: 'hub-1' });
  });

  it('takes the previous secret it can open while the current one is sealed with a key it lacks yet (a key rotation rolling: review "rotation")', async () => {
    const now = 1_700_000_000_000;
    const rolled = new SecretBox(keyB, [keyA]);
    const notYet = new SecretBox(keyA);
    const registry = new MemoryHubRegistry();
    const admission = new HubAdmission(registry, new MemoryNonceStore(() => now), 300, () => now, notYet);
    await registry.create({ hubId: 'hub-1', homeId: 'home', model: undefined, secret: notYet.seal('hub-1', 'old-secret'), enabled: true, createdAt: now });
    // re-keyed through a node that seals with the new key
    await registry.rotateSecret('hub-1', rolled.seal('hub-1', 'new-secret'), now + 60_000);
    const admit = (secret: string) => admission.admit(hubCredentials('hub-1', secret, now));
    await expect(admit('old-secret')).resolves.toMatchObject({ hubId: 'hub-1' });
    // what it cannot open it still says, when nothing it can open matches
    await expect(admit('new-secret')).rejects.toThrow(/key/);
  });
});
