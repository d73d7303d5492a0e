import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { codeRelease } from '../../src/config/release.js';
import { loadConfig } from '../../src/config/config.js';

/** A tree laid out as the compiled node's: dist/package.json beside dist/src/. */
function tree(files: Record<string, string>, version = '2.1.0'): string {
  const dist = mkdtempSync(join(tmpdir(), 'release-'));
  writeFileSync(join(dist, 'package.json'), JSON.stringify({ type: 'module', version }));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dist, 'src', path, '..'), { recursive: true });
    writeFileSync(join(dist, 'src', path), text);
  }
  return join(dist, 'src');
}

describe('the release a node says it runs', () => {
  it('is the version and a hash of the code: the same code gives the same, a changed module another', () => {
    const one = codeRelease(tree({ 'main.js': 'a', 'ports/x.js': 'b', 'api/console.html': 'c' }));
    expect(one).toMatch(/^2\.1\.0\+[0-9a-f]{12}$/);
    expect(codeRelease(tree({ 'main.js': 'a', 'ports/x.js': 'b', 'api/console.html': 'c' }))).toBe(one);
    expect(codeRelease(tree({ 'main.js': 'a', 'ports/x.js': 'B', 'api/console.html': 'c' }))).not.toBe(one);
    // a module moved is another release too; declaration and map files are not code
    expect(codeRelease(tree({ 'main.js': 'a', 'ports/y.js': 'b', 'api/console.html': 'c' }))).not.toBe(one);
    expect(codeRelease(tree({ 'main.js': 'a', 'ports/x.js': 'b', 'api/console.html': 'c', 'main.d.ts': 'd', 'main.js.map': 'm' }))).toBe(one);
    expect(codeRelease(tree({ 'main.js': 'a' }, '2.2.0'))).toMatch(/^2\.2\.0\+/);
  });

  it('TIER_RELEASE names it instead (an image tag); unset, the running code is hashed', () => {
    expect(loadConfig({ TIER_RELEASE: 'registry/hubtier:2026.12.07' }).config.release).toBe('registry/hubtier:2026.12.07');
    expect(loadConfig({}).config.release).toMatch(/^\d+\.\d+\.\d+\+[0-9a-f]{12}$/);
  });
});
