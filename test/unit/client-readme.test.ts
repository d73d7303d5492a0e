/** README's client library example is the code `tsc --noEmit` compiles in test/types/readme-client.ts. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

describe("README's client library example", () => {
  it('is the code test/types/readme-client.ts compiles', () => {
    const file = readFileSync('test/types/readme-client.ts', 'utf8');
    const example = file.slice(file.indexOf("import { ClientError, HubtierClient } from 'hubtier/client';"), file.indexOf('void result;'));
    expect(example).toContain('client.subscribe(');
    expect(readFileSync('README.md', 'utf8')).toContain('```ts\n' + example + '```');
  });
});
