import { describe, expect, it } from 'vitest';
import { isValidRequestId, RequestIds } from '../../src/log/request-id.js';

describe('request ids', () => {
  it('accepts 1 to 128 characters of [A-Za-z0-9._:-] and nothing else', () => {
    for (const ok of ['a', 'abc-123', 'A.b_c:d-9', 'x'.repeat(128), '6f1c2a4e-1b2c-4d3e-8f90-0a1b2c3d4e5f']) expect(isValidRequestId(ok)).toBe(true);
    for (const bad of ['', 'x'.repeat(129), 'a b', 'a/b', 'a\nb', 'é', '"quoted"', 'a,b', '<script>']) expect(isValidRequestId(bad)).toBe(false);
  });

  it("keeps the caller's valid id and replaces an invalid or missing one by a generated one", () => {
    const ids = new RequestIds('node-a');
    expect(ids.from('abc-123')).toBe('abc-123');
    for (const header of ['', 'a b', 'x'.repeat(129)]) {
      const id = ids.from(header);
      expect(id).not.toBe(header);
      expect(id.startsWith('node-a-')).toBe(true);
      expect(isValidRequestId(id)).toBe(true);
    }
  });

  it('generates distinct valid ids, per process and across processes of one node id', () => {
    const a = new RequestIds('node-a');
    const seen = new Set(Array.from({ length: 1000 }, () => a.next()));
    expect(seen.size).toBe(1000);
    // a restart of the same node starts its counter again: the random part keeps the ids apart
    expect(new RequestIds('node-a').next()).not.toBe(new RequestIds('node-a').next());
  });

  it('makes valid ids from a node id with characters outside the alphabet', () => {
    const id = new RequestIds('node a/ü').next();
    expect(isValidRequestId(id)).toBe(true);
    expect(id.startsWith('node_a__-')).toBe(true);
  });
});
