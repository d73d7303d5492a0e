/**
 * The handshake's timestamp window: ±skew whole seconds around the server's clock, the same on both
 * sides although the server's clock is read in ms (a hub signs whole seconds, PROTOCOL.md §2.1).
 */
import { describe, expect, it } from 'vitest';
import { HubAdmission } from '../../src/auth/hub-admission.js';
import { hubCredentials } from '../../src/auth/hub-signature.js';
import { MemoryHubRegistry, MemoryNonceStore } from '../../src/ports/hub-registry/hub-registry-memory.js';

const SKEW_S = 300;
/** the server's clock: late in its second, where a fractional comparison tips one edge over */
const NOW_MS = 1_700_000_000_900;

async function admission(): Promise<HubAdmission> {
  const registry = new MemoryHubRegistry();
  await registry.create({ hubId: 'skew-hub', homeId: 'skew-home', model: undefined, secret: 'skew-secret', enabled: true, createdAt: 1 });
  return new HubAdmission(registry, new MemoryNonceStore(() => NOW_MS), SKEW_S, () => NOW_MS);
}

/** Admits a hub whose clock reads the server's second plus `offsetS`; answers 'admitted' or the refusal's code. */
async function admitAt(offsetS: number): Promise<string> {
  const hubMs = Math.floor(NOW_MS / 1000) * 1000 + offsetS * 1000;
  try {
    await (await admission()).admit(hubCredentials('skew-hub', 'skew-secret', hubMs));
    return 'admitted';
  } catch (err) {
    return (err as { code: string }).code;
  }
}

describe('the handshake timestamp window', () => {
  it('admits a hub exactly skew seconds behind or ahead', async () => {
    expect(await admitAt(-SKEW_S)).toBe('admitted');
    expect(await admitAt(SKEW_S)).toBe('admitted');
  });

  it('refuses one second beyond, on either side', async () => {
    expect(await admitAt(-SKEW_S - 1)).toBe('stale_timestamp');
    expect(await admitAt(SKEW_S + 1)).toBe('stale_timestamp');
  });
});
