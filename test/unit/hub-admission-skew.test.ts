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

describe('how long a nonce is kept', () => {
  /** Node admissions on one nonce store whose clock is `clock.now`; each node's clock runs `lagMs` behind it. */
  async function nodes(spreadS: number, ...lagsMs: number[]) {
    const clock = { now: Math.floor(NOW_MS / 1000) * 1000 };
    const registry = new MemoryHubRegistry();
    await registry.create({ hubId: 'skew-hub', homeId: 'skew-home', model: undefined, secret: 'skew-secret', enabled: true, createdAt: 1 });
    // no step of the wall clock here: both of the store's clocks move together
    const nonces = new MemoryNonceStore(() => clock.now, () => clock.now);
    const admit = lagsMs.map((lag) => (c: ReturnType<typeof hubCredentials>) => new HubAdmission(registry, nonces, SKEW_S, () => clock.now - lag, undefined, spreadS).admit(c).then(() => 'admitted', (err: { code: string }) => err.code));
    return { clock, admit };
  }

  it('until its hello can no longer be admitted: a hello stamped skew ahead is refused as a replay to the last ms of its window', async () => {
    const { clock, admit } = await nodes(0, 0);
    const second = clock.now / 1000;
    const hello = hubCredentials('skew-hub', 'skew-secret', (second + SKEW_S) * 1000);
    expect(await admit[0]!(hello)).toBe('admitted');
    // the last ms at which its ts is within the skew: kept 2 × skew only, the nonce was gone by then
    clock.now = (second + 2 * SKEW_S) * 1000 + 999;
    expect(await admit[0]!(hello)).toBe('nonce_reused');
    clock.now += 1;
    expect(await admit[0]!(hello)).toBe('stale_timestamp');
  });

  it('in a cluster, as long again as the skew: a node whose clock lags the claiming node by less than the skew refuses the replay', async () => {
    const lagMs = (SKEW_S - 1) * 1000;
    const { clock, admit } = await nodes(SKEW_S, 0, lagMs);
    const second = clock.now / 1000;
    const hello = hubCredentials('skew-hub', 'skew-secret', (second + SKEW_S) * 1000);
    expect(await admit[0]!(hello)).toBe('admitted');
    // the lagging node's last ms of the hello's window
    clock.now = (second + 2 * SKEW_S) * 1000 + 999 + lagMs;
    expect(await admit[1]!(hello)).toBe('nonce_reused');
    clock.now += 1;
    expect(await admit[1]!(hello)).toBe('stale_timestamp');
  });
});
