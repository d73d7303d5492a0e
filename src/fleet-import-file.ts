/**
 * The hubs of a `npm run fleet -- import` file: CSV (header `hubId,homeId[,model]`) or JSON lines
 * (`{"hubId","homeId","model"?,"labels"?}`), each with its line number. Each hub is checked here
 * against the batch route's own item schema (ids as `isValidId` of proto/subjects.ts, model and
 * label bounds), so a bad line is reported with its number and never sent: one bad line cannot
 * make the node refuse the batch of 1,000 around it.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Static } from '@sinclair/typebox';
import { compile } from './schemas/check.js';
import { BatchItem } from './schemas/fleet.js';

export type ImportItem = Static<typeof BatchItem>;

/** A hub the tool did not provision, with why: unreadable, refused by the check here or by the node. */
export interface ImportFailure {
  line: number;
  hubId: string | null;
  code: string;
  message: string;
}

export interface ImportFile {
  /** the hubs that pass the node's checks, in file order */
  items: Array<{ line: number; item: ImportItem }>;
  /** lines that cannot be read or would be refused */
  bad: ImportFailure[];
}

const batchItem = compile(BatchItem);

/** The checked hubs of a file and its bad lines; throws when a CSV file has no usable header. */
export async function readImportFile(file: string): Promise<ImportFile> {
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  const out: ImportFile = { items: [], bad: [] };
  let columns: string[] | null = null;
  let n = 0;
  for await (const raw of lines) {
    n++;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    // the stream reads bytes that are not UTF-8 as U+FFFD: such a model was provisioned as "��"
    if (line.includes('\uFFFD')) {
      out.bad.push({ line: n, hubId: null, code: 'invalid_field', message: 'not valid UTF-8 (or holds U+FFFD): save the file as UTF-8' });
      continue;
    }
    let value: unknown;
    if (line.startsWith('{')) {
      try {
        value = JSON.parse(line);
      } catch {
        out.bad.push({ line: n, hubId: null, code: 'malformed_frame', message: 'not JSON' });
        continue;
      }
    } else {
      // cells are split on every comma: a quoted cell ("h2, rev b", as spreadsheets write a comma
      // in a cell) would be read cut and provisioned so, without a word
      if (line.includes('"')) {
        if (columns === null) throw new Error(`${file}:${n}: quoted CSV is not read: write the header and cells without quotes, or the file as JSON lines`);
        out.bad.push({ line: n, hubId: null, code: 'invalid_field', message: 'quoted CSV cells are not read: write the line without quotes (and no comma in a cell), or the file as JSON lines' });
        continue;
      }
      const cells = line.split(',').map((c) => c.trim());
      if (columns === null) {
        columns = cells;
        if (!columns.includes('hubId') || !columns.includes('homeId')) throw new Error(`${file}:${n}: a CSV file starts with a header naming hubId and homeId (and optionally model)`);
        continue;
      }
      if (cells.length > columns.length) {
        out.bad.push({ line: n, hubId: null, code: 'invalid_field', message: `line: ${cells.length} cells, the header names ${columns.length} (a comma in a cell?)` });
        continue;
      }
      const row = Object.fromEntries(columns.map((c, i) => [c, cells[i] ?? '']));
      value = { hubId: row.hubId, homeId: row.homeId, ...(row.model ? { model: row.model } : {}) };
    }
    if (batchItem.is(value)) {
      out.items.push({ line: n, item: value });
      continue;
    }
    const problem = batchItem.problem(value, 'line') ?? { field: 'line', what: 'is not valid' };
    const hubId = (value as { hubId?: unknown } | null)?.hubId;
    out.bad.push({ line: n, hubId: typeof hubId === 'string' && hubId !== '' ? hubId : null, code: 'invalid_field', message: `${problem.field}: ${problem.what}` });
  }
  return out;
}
