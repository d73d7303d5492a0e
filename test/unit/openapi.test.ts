import { describe, expect, it } from 'vitest';
import { openApiDocument, undocumented } from '../../src/api/openapi.js';

describe('OpenAPI document', () => {
  it('names routes it has no words for, so a new route without documentation is caught', () => {
    const table = [
      { method: 'get', pattern: '/v1/hubs/:hubId' },
      { method: 'post', pattern: '/v1/new/thing' },
    ];
    expect(undocumented(table)).toEqual(['post /v1/new/thing']);
    const doc = openApiDocument(table, '1.0.0') as { paths: Record<string, Record<string, { summary: string }>> };
    expect(doc.paths['/v1/hubs/{hubId}']!.get!.summary).toMatch(/connected/);
    expect(doc.paths['/v1/new/thing']!.post!.summary).toBe('undocumented');
  });
});
