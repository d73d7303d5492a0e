/**
 * The lines of a `npm run fleet -- import` CSV file: cells are split on commas, so a quoted cell
 * (a spreadsheet's way to hold a comma) or a row with more cells than the header is a bad line
 * with its number, never a hub provisioned with a cut model.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readImportFile } from '../../src/fleet-import-file.js';

const dir = mkdtempSync(join(tmpdir(), 'fleet-import-file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

describe('a fleet import CSV file', () => {
  it('reports a quoted cell and a row with a cell too many as bad lines, and reads the others', async () => {
    const read = await readImportFile(file('hubs.csv', 'hubId,homeId,model\nh-1,home,h2\nh-2,home,"h2, rev b"\nh-3,home,h2,rev b\nh-4,home\n'));
    expect(read.items.map((i) => [i.line, i.item])).toEqual([
      [2, { hubId: 'h-1', homeId: 'home', model: 'h2' }],
      [5, { hubId: 'h-4', homeId: 'home' }],
    ]);
    expect(read.bad).toEqual([
      expect.objectContaining({ line: 3, code: 'invalid_field', message: expect.stringMatching(/^quoted CSV cells are not read/) }),
      expect.objectContaining({ line: 4, code: 'invalid_field', message: 'line: 4 cells, the header names 3 (a comma in a cell?)' }),
    ]);
  });

  it('reports a line that is not UTF-8 as bad, never a model of U+FFFD', async () => {
    const path = join(dir, 'latin1.csv');
    writeFileSync(path, Buffer.concat([Buffer.from('hubId,homeId,model\nh-1,home,'), Buffer.from([0xff, 0xfe]), Buffer.from('\nh-2,home,h2\n')]));
    const read = await readImportFile(path);
    expect(read.items.map((i) => i.item.hubId)).toEqual(['h-2']);
    expect(read.bad).toEqual([expect.objectContaining({ line: 2, code: 'invalid_field', message: expect.stringMatching(/^not valid UTF-8/) })]);
  });

  it('refuses a quoted header naming the file and line', async () => {
    const path = file('quoted.csv', '"hubId","homeId"\nh-1,home\n');
    await expect(readImportFile(path)).rejects.toThrow(`${path}:1: quoted CSV is not read`);
  });
});
