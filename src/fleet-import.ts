/**
 * `npm run fleet -- import FILE`: the factory's bulk provisioning. Reads hubs from a CSV file
 * (header `hubId,homeId[,model]`) or JSON lines (`{"hubId","homeId","model"?,"labels"?}`), sends
 * them to a node in batches of up to 1,000 (`POST /v1/admin/hubs:batch`, each item provisioned or
 * refused on its own) and writes each new hub's secret once, to an output file only the user can
 * read (`hubId,secret` lines; the file must not exist yet: a secret is never overwritten). A line
 * that cannot be read is reported with its number and sent nowhere.
 */
import { appendFileSync, createReadStream, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

export interface ImportItem {
  hubId: string;
  homeId: string;
  model?: string;
  labels?: Record<string, string>;
}

export interface ImportReport {
  created: number;
  /** refused by the node or unreadable, each with why */
  failed: Array<{ line: number; hubId: string | null; code: string; message: string }>;
}

/** Most hubs per request (the batch route's bound). */
export const IMPORT_BATCH = 1_000;

/** The items of a CSV or JSON-lines file, with their line numbers; unreadable lines as failures. */
export async function readImportFile(file: string): Promise<{ items: Array<ImportItem & { line: number }>; bad: ImportReport['failed'] }> {
  const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
  const items: Array<ImportItem & { line: number }> = [];
  const bad: ImportReport['failed'] = [];
  let columns: string[] | null = null;
  let n = 0;
  for await (const raw of lines) {
    n++;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line.startsWith('{')) {
      let v: unknown;
      try {
        v = JSON.parse(line);
      } catch {
        bad.push({ line: n, hubId: null, code: 'malformed_frame', message: 'not JSON' });
        continue;
      }
      const o = v as Partial<ImportItem>;
      if (typeof o.hubId !== 'string' || typeof o.homeId !== 'string') {
        bad.push({ line: n, hubId: typeof o.hubId === 'string' ? o.hubId : null, code: 'invalid_field', message: 'hubId and homeId are required strings' });
        continue;
      }
      items.push({ ...(o as ImportItem), line: n });
      continue;
    }
    const cells = line.split(',').map((c) => c.trim());
    if (columns === null) {
      columns = cells;
      if (!columns.includes('hubId') || !columns.includes('homeId')) throw new Error(`${file}:${n}: a CSV file starts with a header naming hubId and homeId (and optionally model)`);
      continue;
    }
    const row = Object.fromEntries(columns.map((c, i) => [c, cells[i] ?? '']));
    if (!row.hubId || !row.homeId) {
      bad.push({ line: n, hubId: row.hubId || null, code: 'invalid_field', message: 'hubId and homeId are required' });
      continue;
    }
    items.push({ hubId: row.hubId, homeId: row.homeId, ...(row.model ? { model: row.model } : {}), line: n });
  }
  return { items, bad };
}

/**
 * Provisions the file's hubs through the node at `url`, writing `out` (created, mode 0600; refused
 * if it exists) as each batch is answered, so a failure later loses no secret of a hub already
 * provisioned. Throws on a refusal of a whole request (a bad token, a body the node refuses)
 * naming its lines.
 */
export async function importHubs(file: string, opts: { url: string; adminToken: string; out: string }): Promise<ImportReport> {
  const { items, bad } = await readImportFile(file);
  const report: ImportReport = { created: 0, failed: [...bad] };
  writeFileSync(opts.out, 'hubId,secret\n', { mode: 0o600, flag: 'wx' });
  for (let i = 0; i < items.length; i += IMPORT_BATCH) {
    const chunk = items.slice(i, i + IMPORT_BATCH);
    const res = await fetch(new URL('/v1/admin/hubs:batch', opts.url), {
      method: 'POST',
      headers: { authorization: `Bearer ${opts.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ hubs: chunk.map(({ line: _line, ...item }) => item) }),
    });
    const body = (await res.json()) as { results?: Array<{ hubId: string; ok: boolean; secret?: string; code?: string; message?: string }>; code?: string; message?: string; field?: string };
    if (res.status !== 200 || !body.results) {
      // a field of the batch names an item: `hubs[3].hubId` is line chunk[3].line
      const at = /^hubs\[(\d+)\]/.exec(body.field ?? '');
      const where = at ? ` (line ${chunk[Number(at[1])]?.line ?? '?'})` : '';
      throw new Error(`the node refused the batch of lines ${chunk[0]!.line}-${chunk.at(-1)!.line}${where}: ${res.status} ${body.code ?? ''} ${body.message ?? ''}`);
    }
    const secrets: string[] = [];
    body.results.forEach((r, j) => {
      if (r.ok && r.secret) {
        report.created++;
        secrets.push(`${r.hubId},${r.secret}\n`);
      } else report.failed.push({ line: chunk[j]!.line, hubId: r.hubId, code: r.code ?? 'internal', message: r.message ?? '' });
    });
    appendFileSync(opts.out, secrets.join(''));
  }
  return report;
}
