/**
 * A hub id not provisioned is refused as a wrong secret is, after the same work: its answer
 * (`bad_signature`) and what it computes (the secret opened, the signature checked) are a
 * provisioned id's, so neither the answer nor the time tells ids apart (reviews "tenant", "diff24").
 */
import { describe, expect, it } from 'vitest';
import { HubAdmission, UnprovisionedHubError } from '../../src/auth/hub-admission.js';
import { hubCredentials } from '../../src/auth/hub-signature.js';
import { SecretBox } from '../../src/auth/secret-box.js';
import { MemoryHubRegistry, MemoryNonceStore } from '../../src/ports/hub-registry/hub-registry-memory.js';

/** A box that counts the secrets it opens. */
class CountingBox extends SecretBox {
  opened = 0;
  override open(hubId: string, sealed: string): string {
    this.opened++;
    return super.open(hubId, sealed);
  }
}

describe('an unprovisioned hub id at the handshake', () => {
  it('is refused bad_signature after opening a sealed secret and checking the signature, as a provisioned id with a wrong secret is', async () => {
    const box = new CountingBox(Buffer.alloc(32, 7));
    const registry = new MemoryHubRegistry();
    await registry.create({ hubId: 'known-hub', homeId: 'h', model: undefined, secret: box.seal('known-hub', 'the-real-secret'), enabled: true, createdAt: 1 });
    const admission = new HubAdmission(registry, new MemoryNonceStore(), 300, Date.now, box);
    const refusal = async (hubId: string) => {
      const before = box.opened;
      const err = await admission.admit(hubCredentials(hubId, 'a-guessed-secret')).catch((e: unknown) => e);
      return { err, opened: box.opened - before };
    };
    const known = await refusal('known-hub');
    const unknown = await refusal('nobody-hub');
    expect(known).toMatchObject({ err: { code: 'bad_signature', message: 'hub signature does not verify' }, opened: 1 });
    expect(unknown).toMatchObject({ err: { code: 'bad_signature', message: 'hub signature does not verify' }, opened: 1 });
    expect(unknown.err).toBeInstanceOf(UnprovisionedHubError);
    expect(known.err).not.toBeInstanceOf(UnprovisionedHubError);
  });
});
