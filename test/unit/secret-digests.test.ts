import { describe, expect, it } from 'vitest';
import { compareDigests, RETIRED_KEPT, retiredAfter, secretDigests } from '../../src/auth/secret-digests.js';
import { sharedSecretsVerdict } from '../../src/admin/diagnose-checks.js';
import { keyId } from '../../src/auth/secret-box.js';

const K1 = '11'.repeat(16) + '22'.repeat(16);
const K2 = '33'.repeat(16) + '44'.repeat(16);
const K3 = '55'.repeat(16) + '66'.repeat(16);
const base = { jwtSecret: 'unit-jwt-secret-0123456789abcdef0123', adminToken: 'unit-admin-token-0123456789ab', secretKey: K1 };
type Node = Partial<typeof base> & { secretKeysOld?: string; jwtSecretsAccepted?: string[]; adminTokensAccepted?: string[] };
const record = async (salt: string, s: Node) => ({ salt, ...(await secretDigests(salt, { ...base, ...s })) });

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

  it('takes tokens whose node and record each accept the other\'s as a rotation, one way only as differing', async () => {
    const OLD = base.jwtSecret;
    const NEW = 'rotated-jwt-secret-0123456789abcdef01';
    const agreement = async (rec: Node, node: Node) => compareDigests(await record('s', rec), await secretDigests('s', { ...base, ...node })).map((d) => [d.name, d.agreement, d.detail]);
    // step one done (every node accepts NEW), a node of step two: signs with NEW, accepts OLD
    expect(await agreement({ jwtSecretsAccepted: [NEW] }, { jwtSecret: NEW, jwtSecretsAccepted: [OLD] })).toEqual([['JWT_SECRET', 'rotating', expect.stringMatching(/rotation is under way/)]]);
    // step one skipped: this node takes the cluster's tokens, the cluster refuses what it mints
    expect(await agreement({}, { jwtSecret: NEW, jwtSecretsAccepted: [OLD] })).toEqual([['JWT_SECRET', 'differs', expect.stringMatching(/refused by the nodes not given this value in JWT_SECRETS_ACCEPTED/)]]);
    // a rollback past the rotation: the cluster takes this node's tokens, this node refuses theirs
    expect(await agreement({ jwtSecret: NEW, jwtSecretsAccepted: [OLD] }, {})).toEqual([['JWT_SECRET', 'differs', expect.stringMatching(/this node does not accept theirs/)]]);
    // the same current value: what each accepts beside it does not matter
    expect(await agreement({ jwtSecretsAccepted: [NEW] }, {})).toEqual([]);
    const admin = 'rotated-admin-token-0123456789';
    expect(await agreement({ adminTokensAccepted: [admin] }, { adminToken: admin, adminTokensAccepted: [base.adminToken] })).toEqual([['ADMIN_TOKEN', 'rotating', expect.any(String)]]);
    // a JWT key accepted is no admin token accepted: the digests are made under each token's name
    expect((await agreement({ jwtSecretsAccepted: [admin] }, { adminToken: admin, adminTokensAccepted: [base.adminToken] })).map((d) => d[1])).toEqual(['differs']);
  });

  it('remember the values a record drops that were its current one, newest first and at most RETIRED_KEPT, and forget one taken back', () => {
    const J = 'JWT_SECRET', A = 'JWT_SECRETS_ACCEPTED', R = 'JWT_SECRETS_RETIRED', F = 'JWT_SECRETS_FORMER';
    // the three rolls: the first drops nothing, the second makes old a former current value, the last drops it
    expect(retiredAfter({ [J]: 'old' }, { [J]: 'old', [A]: 'new' })).toEqual({});
    expect(retiredAfter({ [J]: 'old', [A]: 'new' }, { [J]: 'new', [A]: 'old' })).toEqual({ [F]: 'old' });
    expect(retiredAfter({ [J]: 'new', [A]: 'old', [F]: 'old' }, { [J]: 'new', [A]: '' })).toEqual({ [R]: 'old' });
    // a node of the settings before the first roll, started during it, drops a value never current:
    // not retired, or every node of the first roll would be refused for it (review "diff14")
    expect(retiredAfter({ [J]: 'old', [A]: 'new' }, { [J]: 'old', [A]: '' })).toEqual({});
    // a one-roll rotation (TIER_SECRETS_CHANGED) drops the current value
    expect(retiredAfter({ [J]: 'x', [R]: 'older' }, { [J]: 'y' })).toEqual({ [R]: 'x,older', [F]: 'x' });
    expect(retiredAfter({ ADMIN_TOKEN: 'a' }, { ADMIN_TOKEN: 'b' })).toEqual({ ADMIN_TOKENS_RETIRED: 'a', ADMIN_TOKENS_FORMER: 'a' });
    // taken back on purpose: no longer dropped
    expect(retiredAfter({ [J]: 'new', [R]: 'old,older', [F]: 'old' }, { [J]: 'new', [A]: 'old' })).toEqual({ [R]: 'older' });
    const many = Array.from({ length: RETIRED_KEPT }, (_, i) => `r${i}`).join(',');
    expect(retiredAfter({ [J]: 'x', [R]: many }, { [J]: 'y' })[R]!.split(',')).toEqual(['x', ...many.split(',').slice(0, RETIRED_KEPT - 1)]);
  });

  it('name a value this node accepts that the record dropped, whatever else agrees', async () => {
    const OLD = base.jwtSecret;
    const NEW = 'rotated-jwt-secret-0123456789abcdef01';
    const rec = { ...(await record('s', { jwtSecret: NEW })), JWT_SECRETS_RETIRED: (await secretDigests('s', base)).JWT_SECRET };
    const stale = compareDigests(rec, await secretDigests('s', { ...base, jwtSecret: NEW, jwtSecretsAccepted: [OLD] }));
    expect(stale).toEqual([{ name: 'JWT_SECRET', agreement: 'retired', detail: expect.stringMatching(/^JWT_SECRETS_ACCEPTED holds a value the cluster dropped/) }]);
    expect(compareDigests(rec, await secretDigests('s', { ...base, jwtSecret: NEW }))).toEqual([]);
    // the same value as an admin token is another digest: not the dropped JWT key
    expect(compareDigests(rec, await secretDigests('s', { ...base, jwtSecret: NEW, adminTokensAccepted: [OLD] }))).toEqual([]);
  });

  it('diagnose: differing fails, rotating warns, agreeing is ok', () => {
    expect(sharedSecretsVerdict(true, [{ name: 'JWT_SECRET', agreement: 'retired', detail: 'd' }])).toMatchObject({ verdict: 'fail', hint: expect.stringMatching(/restart it without it in JWT_SECRETS_ACCEPTED/) });
    expect(sharedSecretsVerdict(true, []).verdict).toBe('ok');
    expect(sharedSecretsVerdict(false, []).verdict).toBe('warn');
    expect(sharedSecretsVerdict(true, [{ name: 'TIER_SECRET_KEY', agreement: 'rotating', detail: 'd' }]).verdict).toBe('warn');
    expect(sharedSecretsVerdict(true, [{ name: 'ADMIN_TOKEN', agreement: 'differs', detail: 'd' }])).toMatchObject({ verdict: 'fail', hint: expect.stringMatching(/ADMIN_TOKEN/) });
    expect(sharedSecretsVerdict(true, [{ name: 'JWT_SECRET', agreement: 'rotating', detail: 'd' }])).toMatchObject({ verdict: 'warn', hint: expect.stringMatching(/JWT_SECRET rotation/) });
  });
});
