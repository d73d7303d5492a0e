/**
 * A token revoked by `jti` stays refused for as long as it may live: 30 days from an `iat` up to
 * TIER_AUTH_SKEW_S ahead of the node's clock. With a skew above 300 s the revocation was dropped
 * the difference before the token's end, and the token was taken again (review "tokens").
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInProcessNode, type InProcessNode } from '../helpers/in-process-node.js';
import { api } from '../helpers/server-process.js';

const ADMIN = 'revoke-skew-admin-token-0123456789';
let node: InProcessNode;
beforeAll(async () => {
  node = await startInProcessNode(ADMIN, 'revoke-skew-jwt-secret-0123456789abcdef', { TIER_AUTH_SKEW_S: '3600' });
});
afterAll(async () => {
  await node?.server.close();
});

describe('a jti revocation with TIER_AUTH_SKEW_S 3600', () => {
  it('is kept until 30 days and the skew from now, past the end of any token the node takes', async () => {
    const res = await api(node.http, 'POST', '/v1/admin/tokens/revoke', ADMIN, { jti: 'skewed-jti' });
    expect(res.status).toBe(200);
    // a token the node takes now may have iat = now + 3600 and exp 30 days after it
    const longestLife = Date.now() + (30 * 86_400 + 3_600) * 1000;
    expect(Date.parse(res.body.until)).toBeGreaterThanOrEqual(longestLife - 2_000);
  });
});
