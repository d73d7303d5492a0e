/**
 * `npm run fleet -- import FILE`: the factory's bulk provisioning. The hubs of the file that pass
 * the batch route's checks (src/fleet-import-file.ts) go to a node 1,000 per request
 * (`POST /v1/admin/hubs:batch`, each item provisioned or refused on its own); a batch the node
 * still refuses whole is sent again in halves, down to the hubs at fault, so each hub is
 * provisioned or refused on its own. Each new hub's secret is written once, as its batch is
 * answered, to a file only the user can read (`hubId,secret` lines; see SecretsFile).
 */
import { closeSync, existsSync, linkSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { Static } from '@sinclair/typebox';
import { readImportFile, type ImportFailure, type ImportItem } from './fleet-import-file.js';
import type { BatchResult } from './schemas/fleet.js';

export interface ImportReport {
  /** hubs provisioned, their secrets in `secrets` */
  created: number;
  /** lines refused (unreadable, failing the checks, or refused by the node), by line */
  failed: ImportFailure[];
  /** lines never sent, or sent to a node that took none of them: the import stopped first */
  notAttempted: number[];
  /** lines sent without an answer read (no answer, 5xx): the node may have provisioned some, their secrets unseen */
  unanswered: number[];
  /** why the import stopped before the end of the file (the URL and what it answered, or `stop`'s reason), null when it did not */
  stopped: string | null;
  /** the file holding the secrets issued: `out` (or a temporary file beside it if `out` appeared meanwhile); null when none were */
  secrets: string | null;
}

/** Most hubs per request (the batch route's bound). */
export const IMPORT_BATCH = 1_000;

type Entry = { line: number; item: ImportItem };

/** What the node did with one request. */
type Answer =
  | { kind: 'results'; results: Array<Static<typeof BatchResult>> }
  /** the body refused whole (400, 413, 422), `field` naming the item at fault when it can */
  | { kind: 'refused'; code: string; message: string; field?: string }
  /** nothing more can be sent: a wrong URL or token, a node away; `maybeDone` when it may have provisioned some */
  | { kind: 'stop'; reason: string; maybeDone: boolean };

export interface ImportOptions {
  url: string;
  adminToken: string;
  out: string;
  /** aborted (Ctrl-C): no further request is sent, the one in flight is answered; the reason says why (`stopped`) */
  stop?: AbortSignal;
  /** aborted (a second Ctrl-C): the request in flight is abandoned too, its lines unanswered */
  cancel?: AbortSignal;
}

/**
 * Provisions the file's hubs through the node at `url` and writes their secrets to `out` (created,
 * mode 0600; refused if it exists). A node that cannot take a request (a bad token, not a node,
 * away) stops the import, as `stop` does: the report says which lines were done, refused, not
 * attempted or unanswered, and every secret issued until then is in `out`, as at the end.
 */
export async function importHubs(file: string, opts: ImportOptions): Promise<ImportReport> {
  if (existsSync(opts.out)) throw new Error(`${opts.out} exists: secrets are written once, to a new file`);
  const { items, bad } = await readImportFile(file);
  const report: ImportReport = { created: 0, failed: [...bad], notAttempted: [], unanswered: [], stopped: null, secrets: null };
  const endpoint = new URL('/v1/admin/hubs:batch', opts.url);
  const secrets = new SecretsFile(opts.out);
  /** lines provisioned or refused */
  const settled = new Set<number>();
  const refuse = (e: Entry, code: string, message: string) => {
    report.failed.push({ line: e.line, hubId: e.item.hubId, code, message });
    settled.add(e.line);
  };

  /** Sends a chunk; a chunk refused whole is split until the node answers per item. False: stop. */
  const deliver = async (chunk: Entry[]): Promise<boolean> => {
    if (opts.stop?.aborted) {
      report.stopped = String(opts.stop.reason);
      return false;
    }
    const answer = await post(endpoint, opts.adminToken, chunk, opts.cancel);
    if (answer.kind === 'stop') {
      report.stopped = opts.cancel?.aborted ? `${String(opts.cancel.reason)}: ${answer.reason}` : answer.reason;
      if (answer.maybeDone) for (const e of chunk) report.unanswered.push(e.line);
      return false;
    }
    if (answer.kind === 'results') {
      const issued: string[] = [];
      answer.results.forEach((r, j) => {
        const e = chunk[j]!;
        if (r.ok) {
          issued.push(`${r.hubId},${r.secret}\n`);
          settled.add(e.line);
        } else refuse(e, r.code, r.message);
      });
      secrets.add(issued);
      report.created += issued.length;
      return true;
    }
    if (chunk.length === 1) {
      refuse(chunk[0]!, answer.code, answer.message);
      return true;
    }
    const at = /^hubs\[(\d+)\]/.exec(answer.field ?? '');
    const named = at ? Number(at[1]) : -1;
    if (named >= 0 && named < chunk.length) {
      refuse(chunk[named]!, answer.code, answer.message);
      return deliver(chunk.filter((_, i) => i !== named));
    }
    const half = Math.ceil(chunk.length / 2);
    return (await deliver(chunk.slice(0, half))) && deliver(chunk.slice(half));
  };

  try {
    for (let i = 0; i < items.length; i += IMPORT_BATCH) {
      if (!(await deliver(items.slice(i, i + IMPORT_BATCH)))) break;
    }
  } finally {
    report.secrets = secrets.finish();
  }
  const unanswered = new Set(report.unanswered);
  report.notAttempted = items.filter((e) => !settled.has(e.line) && !unanswered.has(e.line)).map((e) => e.line);
  report.failed.sort((a, b) => a.line - b.line);
  return report;
}

/** Sorted line numbers as ranges: `12, 2002-2500`. */
export function lineRanges(lines: readonly number[]): string {
  const sorted = [...lines].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(j === i ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(', ');
}

/** One request and what came of it (`cancel`: abandoned, no answer); never throws. */
async function post(endpoint: URL, adminToken: string, chunk: Entry[], cancel: AbortSignal | undefined): Promise<Answer> {
  let res: Response;
  let text: string;
  try {
    res = await fetch(endpoint, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ hubs: chunk.map((e) => e.item) }),
      ...(cancel ? { signal: cancel } : {}),
    });
    text = await res.text();
  } catch (err) {
    const e = err as Error & { cause?: Error };
    return { kind: 'stop', reason: `${endpoint.href}: no answer (${e.cause?.message ?? e.message})`, maybeDone: true };
  }
  const status = `${endpoint.href} answered ${res.status} ${res.statusText}`;
  let body: { results?: unknown; code?: unknown; message?: unknown; field?: unknown } | null = null;
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v === 'object' && v !== null) body = v;
  } catch {
    // not JSON: said below
  }
  if (body === null) {
    const type = res.headers.get('content-type') ?? 'no content-type';
    return { kind: 'stop', reason: `${status} with ${type}, not the node's JSON: is the URL the node's HTTP API port?`, maybeDone: res.status >= 500 };
  }
  if (res.status === 200 && Array.isArray(body.results) && body.results.length === chunk.length) return { kind: 'results', results: body.results as Array<Static<typeof BatchResult>> };
  const code = typeof body.code === 'string' ? body.code : 'refused';
  const message = typeof body.message === 'string' ? body.message : '';
  if (res.status === 400 || res.status === 413 || res.status === 422) return { kind: 'refused', code, message, ...(typeof body.field === 'string' ? { field: body.field } : {}) };
  // a 2xx this tool does not understand may have provisioned hubs, as may a 5xx
  return { kind: 'stop', reason: `${status}: ${code}${message ? ` ${message}` : ''}`, maybeDone: res.status < 300 || res.status >= 500 };
}

/**
 * The secrets output. Written to a temporary file beside `out` as batches are answered (a later
 * failure loses no secret: they are shown only once), then linked to `out`, which is never
 * overwritten; removed when no secret was issued, so a failed run leaves nothing that blocks the next.
 */
class SecretsFile {
  private readonly fd: number;
  private readonly temp: string;
  private written = 0;

  constructor(private readonly out: string) {
    this.temp = join(dirname(out), `.${basename(out)}.${process.pid}.partial`);
    this.fd = openSync(this.temp, 'wx', 0o600);
    writeSync(this.fd, 'hubId,secret\n');
  }

  add(lines: string[]): void {
    if (lines.length === 0) return;
    writeSync(this.fd, lines.join(''));
    this.written += lines.length;
  }

  /** Where the secrets are: `out`, the temporary file when `out` cannot be made, null when none were issued. */
  finish(): string | null {
    closeSync(this.fd);
    if (this.written === 0) {
      unlinkSync(this.temp);
      return null;
    }
    try {
      linkSync(this.temp, this.out); // unlike rename, refuses to replace a file that appeared meanwhile
    } catch {
      return this.temp;
    }
    unlinkSync(this.temp);
    return this.out;
  }
}
