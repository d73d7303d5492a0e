/**
 * A node's /metrics reads the large-answer bound (`pendingAnswers`, http.ts) at each scrape: the
 * bytes held for readers and the answers refused. MemorySources' own test feeds the series by
 * hand; this one shows the node hands them the real counts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pendingAnswers } from '../../src/transport/http.js';
import { startInProcessNode, type InProcessNode } from '../helpers/in-process-node.js';

const ADMIN = 'pending-metrics-admin-token-0123456789';
let node: InProcessNode;

beforeAll(async () => {
  node = await startInProcessNode(ADMIN, 'pending-metrics-jwt-secret-0123456789ab');
});
afterAll(async () => {
  await node?.server.close();
});

const scrape = async () => (await fetch(`http://127.0.0.1:${node.server.adminPort}/metrics`)).text();
const value = (text: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);

describe("the node's /metrics and the large-answer bound", () => {
  it('shows the bytes held for readers and counts the answers refused', async () => {
    const before = await scrape();
    expect(pendingAnswers.take(123_457)).toBe(true);
    pendingAnswers.refuse();
    try {
      const during = await scrape();
      expect(value(during, 'tier_http_pending_answer_bytes') - value(before, 'tier_http_pending_answer_bytes')).toBe(123_457);
      expect(value(during, 'tier_http_answers_refused_total') - value(before, 'tier_http_answers_refused_total')).toBe(1);
    } finally {
      pendingAnswers.give(123_457);
    }
  });
});
