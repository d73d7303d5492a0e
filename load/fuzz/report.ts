import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * What the fuzzer saw: counters, invariant violations (grouped, each with a reproducer), crashes
 * with the inputs that preceded them, and the summary printed at the end (text or JSON).
 */

export type Surface = 'hub' | 'app' | 'http' | 'node';

/** Who a request authenticates as; resolved to the run's tokens when sent or replayed. */
export type AuthSpec = 'admin' | 'user' | 'none' | { header: string } | { query: string } | { protocol: string };

/**
 * One input as sent, complete enough to be sent again by `--replay`. Bytes are hex; `text` is a
 * WebSocket text message. `at` is ms since the run started.
 */
export type InputRecord =
  | {
      surface: 'hub';
      klass: string;
      at: number;
      hub: number;
      /** `session`: after welcome; `pre-hello`: before any hello; `upgrade`: the upgrade request itself */
      stage: 'session' | 'pre-hello' | 'upgrade';
      hex?: string;
      text?: string;
      /** upgrade only: header overrides (`null` removes a signed header) and a query string */
      headers?: Record<string, string | null>;
      query?: string;
    }
  | { surface: 'app'; klass: string; at: number; enc: 'json' | 'msgpack'; auth: AuthSpec; query?: string; hex?: string; text?: string; upgradeOnly?: boolean }
  | { surface: 'http'; klass: string; at: number; method: string; path: string; auth: AuthSpec; headers: Record<string, string>; bodyHex?: string };

/**
 * Adds `key` (hex of `bytes`) to a record as an enumerable getter: most inputs are never printed
 * or saved, so their hex (up to 2 MB for an oversize body) is made only when asked for.
 */
export function lazyHex<T extends object>(record: T, key: 'hex' | 'bodyHex', bytes: Uint8Array): T {
  let hex: string | undefined;
  Object.defineProperty(record, key, { enumerable: true, get: () => (hex ??= Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')) });
  return record;
}

export interface Violation {
  invariant: string;
  surface: Surface;
  klass: string;
  detail: string;
  /** the input that showed it */
  input?: InputRecord;
  /** what varies between occurrences of one group (the hostile name); the group lists them */
  tag?: string;
  /** groups occurrences by this instead of by the detail (whose wording may vary) */
  key?: string;
}

export interface ViolationGroup {
  invariant: string;
  surface: Surface;
  klass: string;
  count: number;
  detail: string;
  /** distinct tags of the occurrences (at most 40) */
  tags: string[];
  examples: Array<{ detail: string; input?: InputRecord; reproducer?: string }>;
}

export interface CrashRecord {
  at: number;
  phase: string;
  exitCode: number | null;
  signal: string | null;
  /** the node's last output lines (the uncaught exception is there) */
  stderrTail: string[];
  /** the replay file holding the inputs sent just before */
  file: string;
  /** each sender's last inputs when the process died (exact for the app and HTTP phases, which send one at a time) */
  inFlight: InputRecord[];
}

/** What `runFuzz` returns and `--json` prints. */
export interface FuzzReport {
  seed: string;
  /** cluster: the spawned node ran in cluster mode, against the run's own nats-server and redis-server */
  target: { spawned: boolean; cluster: boolean; httpUrl: string; pid: number | null; restarts: number };
  durationMs: number;
  stoppedEarly: string | null;
  sent: Recorder['sent'];
  rates: { hubFramesPerSec: number; appMessagesPerSec: number; httpRequestsPerSec: number };
  phaseMs: Record<string, number>;
  /** per phase: wall time, the node's CPU (null when it restarted in the phase), its RSS at the end, restarts */
  phases: Record<string, { ms: number; nodeCpuMs: number | null; rssAfterBytes: number | null; restarts: number }>;
  hub: { framesByClass: Record<string, number>; control: Record<string, number>; responsesByType: Record<string, number>; errorFramesByCode: Record<string, number>; closesByCode: Record<string, number>; upgrades: Record<string, number> };
  app: { replies: Record<string, number>; closesByCode: Record<string, number>; upgrades: Record<string, number> };
  http: { statuses: Record<string, number>; errorCodes: Record<string, number> };
  crashes: CrashRecord[];
  quarantined: string[];
  rss: { beforeBytes: number | null; afterBytes: number | null };
  /** CPU time of the node (its last process) and of the fuzzer during the run, ms */
  cpu: { nodeMs: number | null; fuzzerMs: number };
  healthz: { checks: number; failures: number };
  actorFailures: number | null;
  serverErrorLogs: Record<string, number>;
  finalCheck: { ok: boolean; detail: string };
  violations: ViolationGroup[];
  violationCount: number;
  replayFiles: string[];
  notes: string[];
}

/** A string → count map that prints sorted. */
export class Counts {
  readonly map = new Map<string, number>();
  inc(key: string | number, n = 1): void {
    const k = String(key);
    this.map.set(k, (this.map.get(k) ?? 0) + n);
  }
  get(key: string): number {
    return this.map.get(key) ?? 0;
  }
  toJSON(): Record<string, number> {
    return Object.fromEntries([...this.map.entries()].sort((a, b) => b[1] - a[1]));
  }
  get total(): number {
    let t = 0;
    for (const v of this.map.values()) t += v;
    return t;
  }
}

/** The ring of recent inputs kept for crash reports. */
const RING = 256;
/** Examples kept per violation group. */
const EXAMPLES = 3;
/** Violation groups kept; more are counted in one overflow group (memory stays bounded in long runs). */
const MAX_GROUPS = 500;
const OVERFLOW = '(overflow)';

export class Recorder {
  readonly started = Date.now();
  readonly counts = {
    hubFrames: new Counts(),
    hubControl: new Counts(),
    hubResponses: new Counts(),
    hubErrorCodes: new Counts(),
    hubCloses: new Counts(),
    hubUpgrades: new Counts(),
    appReplies: new Counts(),
    appCloses: new Counts(),
    appUpgrades: new Counts(),
    httpStatuses: new Counts(),
    httpCodes: new Counts(),
    serverLogErrors: new Counts(),
  };
  sent = { hubFrames: 0, hubConnects: 0, appMessages: 0, appConnects: 0, httpRequests: 0 };
  readonly crashes: CrashRecord[] = [];
  private readonly groups = new Map<string, ViolationGroup>();
  private readonly ring: InputRecord[] = [];
  /** classes of input that crashed the node: class → crashes */
  readonly crashClasses = new Counts();
  readonly notes: string[] = [];

  constructor(
    readonly seed: string,
    readonly outDir: string,
  ) {}

  now(): number {
    return Date.now() - this.started;
  }

  sentInput(input: InputRecord): void {
    this.ring.push(input);
    if (this.ring.length > RING) this.ring.shift();
  }

  recent(): InputRecord[] {
    return [...this.ring];
  }

  violation(v: Violation): void {
    // one group per kind of failure: the detail without its numbers (sequence numbers, counts)
    const key = `${v.invariant}|${v.surface}|${v.klass}|${v.key ?? v.detail.replace(/\d+/g, '#').slice(0, 100)}`;
    let g = this.groups.get(key);
    if (!g && this.groups.size >= MAX_GROUPS) g = this.groups.get(OVERFLOW);
    if (!g && this.groups.size >= MAX_GROUPS) {
      g = { invariant: 'other', surface: v.surface, klass: 'more-groups', count: 0, detail: `more than ${MAX_GROUPS} kinds of violation: the rest are counted here`, tags: [], examples: [] };
      this.groups.set(OVERFLOW, g);
    }
    if (!g) {
      g = { invariant: v.invariant, surface: v.surface, klass: v.klass, count: 0, detail: v.detail, tags: [], examples: [] };
      this.groups.set(key, g);
    }
    g.count++;
    if (v.tag !== undefined && g.tags.length < 40 && !g.tags.includes(v.tag)) g.tags.push(v.tag);
    if (g.examples.length < EXAMPLES) g.examples.push({ detail: v.detail, input: v.input, reproducer: v.input ? reproducer(v.input) : undefined });
  }

  get violations(): ViolationGroup[] {
    return [...this.groups.values()];
  }

  get violationCount(): number {
    let n = 0;
    for (const g of this.groups.values()) n += g.count;
    return n;
  }

  /** Writes a replay file (`npm run fuzz -- --replay <file>`); returns its path. */
  writeReplay(name: string, body: Record<string, unknown>): string {
    mkdirSync(this.outDir, { recursive: true });
    const file = join(this.outDir, `${name}.json`);
    writeFileSync(file, JSON.stringify({ version: 1, seed: this.seed, ...body }, null, 1) + '\n');
    return file;
  }

  crash(c: Omit<CrashRecord, 'file'>): CrashRecord {
    const file = this.writeReplay(`crash-${this.seed}-${this.crashes.length + 1}`, {
      kind: 'crash',
      exitCode: c.exitCode,
      signal: c.signal,
      stderrTail: c.stderrTail,
      inFlight: c.inFlight,
      inputs: this.recent(),
    });
    const rec = { ...c, file };
    this.crashes.push(rec);
    // one sender, one input: the crash is that input's (the app and HTTP phases send one at a time)
    if (c.inFlight.length === 1) this.crashClasses.inc(`${c.inFlight[0]!.surface}:${c.inFlight[0]!.klass}`);
    return rec;
  }

  /** One replay file per violation group (its first example), so each can be rerun alone. */
  writeViolationReplays(): string[] {
    const files: string[] = [];
    let n = 0;
    for (const g of this.groups.values()) {
      const input = g.examples[0]?.input;
      if (!input) continue;
      const file = this.writeReplay(`violation-${this.seed}-${++n}`, { kind: 'violation', invariant: g.invariant, detail: g.detail, inputs: [input] });
      (g as ViolationGroup & { replay?: string }).replay = file;
      files.push(file);
    }
    return files;
  }
}

/** A shell-ready reproducer: curl for HTTP, the bytes for the sockets. */
export function reproducer(input: InputRecord): string {
  switch (input.surface) {
    case 'http': {
      const parts = ['curl -sS -i --path-as-is', `-X ${shellQuote(input.method)}`];
      if (input.auth === 'admin') parts.push(`-H "Authorization: Bearer $ADMIN_TOKEN"`);
      else if (input.auth === 'user') parts.push(`-H "Authorization: Bearer $USER_TOKEN"`);
      else if (typeof input.auth === 'object' && 'header' in input.auth) parts.push(`-H ${shellQuote(`Authorization: ${abbreviate(input.auth.header)}`)}`);
      for (const [k, v] of Object.entries(input.headers)) parts.push(`-H ${shellQuote(`${k}: ${abbreviate(v)}`)}`);
      if (input.bodyHex !== undefined) {
        const body = Buffer.from(input.bodyHex, 'hex');
        const printable = /^[\x20-\x7e]*$/.test(body.toString('latin1'));
        parts.push(printable && body.length <= 300 ? `--data-binary ${shellQuote(body.toString('latin1'))}` : `--data-binary @<(echo ${body.length <= 300 ? input.bodyHex : abbreviate(input.bodyHex)} | xxd -r -p)`);
      }
      parts.push(shellQuote(`http://127.0.0.1:$PORT${abbreviate(input.path)}`));
      return parts.join(' ');
    }
    case 'hub':
      if (input.stage === 'upgrade') return `hub upgrade to /hub/v1${input.query ? `?${abbreviate(input.query)}` : ''} with headers ${abbreviate(JSON.stringify(input.headers ?? {}))}`;
      if (input.text !== undefined) return `${input.stage === 'pre-hello' ? 'before hello' : 'after hello'}: text frame ${abbreviate(JSON.stringify(input.text))}`;
      return `${input.stage === 'pre-hello' ? 'before hello' : 'after hello, first sequenced frame'}: binary frame ${abbreviate(input.hex ?? '', 400)}`;
    case 'app': {
      const where = `/app/v1?${input.query ? `${input.query}&` : ''}token=${typeof input.auth === 'string' ? `<${input.auth}>` : abbreviate(JSON.stringify(input.auth))}`;
      if (input.upgradeOnly) return `upgrade ${where}`;
      return `${where}: ${input.text !== undefined ? `text ${abbreviate(JSON.stringify(input.text))}` : `binary ${abbreviate(input.hex ?? '', 400)}`}`;
    }
  }
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Long values shortened for printing (the replay file keeps them whole). */
export function abbreviate(s: string, max = 200): string {
  return s.length <= max ? s : `${s.slice(0, max / 2)}…(${s.length} chars)…${s.slice(-20)}`;
}

const mib = (b: number | null) => (b === null ? 'unknown' : `${(b / 1024 / 1024).toFixed(1)} MiB`);
const counts = (r: Record<string, number>) => {
  const e = Object.entries(r);
  return e.length ? e.map(([k, v]) => `${k} ${v}`).join(', ') : 'none';
};

/** The exception a crashed node printed (its first error line and the first stack frame in src/). */
export function crashCause(lines: string[]): string {
  const err = lines.find((l) => /^(\w*Error|Error)\b|^\s*(Uncaught|FATAL)|out of memory/i.test(l)) ?? lines.find((l) => /Error/.test(l)) ?? lines[lines.length - 1] ?? '';
  const at = lines.find((l) => /^\s+at .*\/src\//.test(l));
  return `${err.trim()}${at ? ` ${at.trim().replace(/^at /, 'at ')}` : ''}`;
}

/** The end-of-run summary for a terminal. */
export function formatReport(r: FuzzReport, command: string): string {
  const out: string[] = [];
  const s = r.sent;
  // a replay needs the same kind of node
  const again = r.target.cluster ? ' --cluster' : '';
  out.push(`hubtier fuzz: seed ${r.seed}, ${(r.durationMs / 1000).toFixed(1)} s, node ${r.target.spawned ? `spawned${r.target.cluster ? ' in cluster mode' : ''} (pid ${r.target.pid ?? '?'}, ${r.target.restarts} restarts)` : r.target.httpUrl}`);
  if (r.stoppedEarly) out.push(`stopped early: ${r.stoppedEarly}`);
  out.push(`sent: ${s.hubFrames} hub frames (${r.rates.hubFramesPerSec}/s) over ${s.hubConnects} upgrades, ${s.appMessages} app messages (${r.rates.appMessagesPerSec}/s) over ${s.appConnects} upgrades, ${s.httpRequests} HTTP requests (${r.rates.httpRequestsPerSec}/s)`);
  out.push(`hub: error frames by code: ${counts(r.hub.errorFramesByCode)}`);
  out.push(`hub: closes by code: ${counts(r.hub.closesByCode)}`);
  out.push(`hub: upgrades: ${counts(r.hub.upgrades)}`);
  out.push(`app: replies: ${counts(r.app.replies)}; closes by code: ${counts(r.app.closesByCode)}; upgrades: ${counts(r.app.upgrades)}`);
  out.push(`http: statuses: ${counts(r.http.statuses)}; error codes: ${counts(r.http.errorCodes)}`);
  out.push(`cpu: node ${r.cpu.nodeMs === null ? 'unknown' : `${(r.cpu.nodeMs / 1000).toFixed(1)} s`}${r.target.restarts ? ' (its last process)' : ''}, fuzzer ${(r.cpu.fuzzerMs / 1000).toFixed(1)} s`);
  for (const [name, p] of Object.entries(r.phases)) {
    out.push(`phase ${name}: ${(p.ms / 1000).toFixed(1)} s, node CPU ${p.nodeCpuMs === null ? 'n/a (restarted)' : `${(p.nodeCpuMs / 1000).toFixed(1)} s`}, node RSS after ${mib(p.rssAfterBytes)}${p.restarts ? `, ${p.restarts} restarts` : ''}`);
  }
  out.push(`node: RSS before ${mib(r.rss.beforeBytes)}, after ${mib(r.rss.afterBytes)}${r.target.restarts ? ' (of the last process)' : ''}; /healthz ${r.healthz.checks} checks, ${r.healthz.failures} failed; actor failures ${r.actorFailures ?? 'unknown'}`);
  if (Object.keys(r.serverErrorLogs).length) out.push(`node error logs: ${counts(r.serverErrorLogs)}`);
  out.push(`crashes: ${r.crashes.length}`);
  r.crashes.forEach((c, i) => {
    const culprit = c.inFlight.length === 1 ? ` after ${reproducer(c.inFlight[0]!)}` : c.inFlight.length ? ` with ${c.inFlight.length} inputs in flight` : '';
    out.push(`  ${i + 1}. [${c.phase}] exit ${c.exitCode ?? c.signal}: ${abbreviate(crashCause(c.stderrTail), 300)}${culprit}`);
    out.push(`     replay: npm run fuzz -- --replay ${c.file}${again}`);
  });
  if (r.quarantined.length) out.push(`input classes not generated again after crashing the node: ${r.quarantined.join(', ')}`);
  out.push(`invariant violations: ${r.violationCount} in ${r.violations.length} groups`);
  for (const g of r.violations) {
    out.push(`  - [${g.invariant}] ${g.surface} ${g.klass} x${g.count}: ${abbreviate(g.detail, 300)}`);
    if (g.tags.length) out.push(`      with: ${abbreviate(g.tags.join(', '), 400)}`);
    const ex = g.examples[0];
    if (ex?.reproducer) out.push(`      e.g. ${ex.reproducer}`);
    const replay = (g as { replay?: string }).replay;
    if (replay) out.push(`      replay: npm run fuzz -- --replay ${replay}${again}`);
  }
  out.push(`final check: ${r.finalCheck.ok ? 'ok' : 'FAILED'}: ${r.finalCheck.detail}`);
  for (const n of r.notes) out.push(`note: ${n}`);
  out.push(`result: ${r.crashes.length === 0 && r.violationCount === 0 ? 'PASS' : `FAIL (${r.crashes.length} crashes, ${r.violationCount} violations)`}`);
  out.push(`reproduce: ${command}`);
  return out.join('\n');
}
