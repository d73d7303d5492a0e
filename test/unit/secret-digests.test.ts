import { describe, expect, it } from 'vitest';
import { compareDigests, secretDigests } from '../../src/auth/secret-digests.js';
import { sharedSecretsVerdict } from '../../src/admin/diagnose-checks.js';
import { keyId } from '../../src/auth/secret-box.js';

const K1 = '11'.repeat(16) + '22'.repeat(16);
const K2 = '33'.repeat(16) + '44'.repeat(16);
const K3 = '55'.repeat(16) + '66'.repeat(16);
const base = { jwtSecret: 'unit-jwt-secret-0123456789abcdef0123', adminToken: 'unit-admin-token-0123456789ab', secretKey: K1 };
const record = async (salt: string, s: Partial<typeof base> & { secretKeysOld?: string }) => ({ salt, ...(await secretDigests(salt, { ...base, ...s })) });

describe('digests of the shared secrets', () => {
  it('hold no secret, depend on the salt, and differ for one value used as both tokens', async () => {
    const a = await secretDigests('salt-a', { ...base, adminToken: base.jwtSecret });
    const b = await secretDigests('salt-b', base);
    expect(JSON.stringify(a)).not.toContain(base.jwtSecret);
    expect(a.JWT_SECRET).not.toBe(a.ADMIN_TOKEN);
    expect(a.JWT_SECRET).not.toBe(b.JWT_SECRET);
    expect(a.TIER_SECRET_KEY).toBe(keyId(Buffer.from(K1, 'hex')));
  });

  it('name each token that differs, and nothing for fields not recorded yet', async () => {
    const mine = await secretDigests('s', base);
    expect(compareDigests({}, mine)).toEqual([]);
    expect(compareDigests(await record('s', {}), mine)).toEqual([]);
    const other = compareDigests(await record('s', { jwtSecret: 'other-jwt-secret-0123456789abcdef0123' }), mine);
    expect(other.map((d) => [d.name, d.agreement])).toEqual([['JWT_SECRET', 'differs']]);
  });

  it('takes a sealing key that opens the record or is opened by it as a rotation, a foreign one as differing', async () => {
    const rec = await record('s', { secretKey: K1 });
    const agreement = async (s: { secretKey: string; secretKeysOld?: string }) => compareDigests(rec, await secretDigests('s', { ...base, ...s })).map((d) => d.agreement);
    expect(await agreement({ secretKey: K2, secretKeysOld: K1 })).toEqual(['rotating']);
    expect(await agreement({ secretKey: K3 })).toEqual(['differs']);
    // a rollback: the record made by a rotated node, this node on the old key alone
    const rotated = await record('s', { secretKey: K2, secretKeysOld: K1 });
    expect(compareDigests(rotated, await secretDigests('s', base)).map((d) => d.agreement)).toEqual(['rotating']);
    expect(compareDigests(rotated, await secretDigests('s', { ...base, secretKey: K2 }))).toEqual([]);
  });

  it('diagnose: differing fails, rotating warns, agreeing is ok', () => {
    expect(sharedSecretsVerdict(true, []).verdict).toBe('ok');
    expect(sharedSecretsVerdict(false, []).verdict).toBe('warn');
    expect(sharedSecretsVerdict(true, [{ name: 'TIER_SECRET_KEY', agreement: 'rotating', detail: 'd' }]).verdict).toBe('warn');
    expect(sharedSecretsVerdict(true, [{ name: 'ADMIN_TOKEN', agreement: 'differs', detail: 'd' }])).toMatchObject({ verdict: 'fail', hint: expect.stringMatching(/ADMIN_TOKEN/) });
  });
});
