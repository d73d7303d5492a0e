import { EventEmitter } from 'node:events';
import { readFile, rename, writeFile } from 'node:fs/promises';
import type { Attrs, CommandFrame, WelcomeFrame } from '../proto/frames.js';
import { ID_PATTERN } from '../proto/subjects.js';
import { HubClient, HubClientError, type CloseInfo, type CommandOutcome } from './hub-client.js';

/**
 * The hub simulator: provisions hubs through the admin API, connects them, keeps plausible
 * sub-device state drifting, executes commands and reconnects with backoff. One shared scheduler
 * drives every hub's reports and reconnects, so hundreds of hubs cost one timer (plus each
 * client's heartbeat timer). The CLI is `load/sim.ts`; tests run `runSimulator` in-process.
 */

export interface SimulatorOptions {
  /** `ws://host:port` of a node; the admin API is the same host over http(s) */
  url: string;
  hubs: number;
  /** sub-devices per hub */
  devices: number;
  adminToken: string;
  /** @default 5 (s): mean report interval per hub, jittered ±20% */
  reportEverySec?: number;
  /** @default 'sim': hub ids are `<prefix>-<i>`, homes `home-<floor(i/10)>` */
  prefix?: string;
  /** @default 0: index of the first hub */
  firstIndex?: number;
  /** @default '.sim-secrets.json': where hub secrets are kept across runs; null: memory only */
  secretsFile?: string | null;
  /** @default 5 (s): status line interval; 0 turns it off */
  statusEverySec?: number;
  /** @default none: receives status lines and per-hub problems */
  out?: (line: string) => void;
  /** @default 32: provisioning requests and first connects in flight at once */
  concurrency?: number;
  /** @default Math.random */
  random?: () => number;
}

export interface SimulatorStats {
  total: number;
  connected: number;
  /** hubs given up on (secret unknown, bad signature, disabled) */
  failed: number;
  reportsSent: number;
  reportsAcked: number;
  eventsSent: number;
  /** frames the server refused (rate_limited, busy): they stay queued and are resent */
  refused: number;
  commands: number;
  /** successful connects after a drop */
  reconnects: number;
  connectFailures: number;
}

export type SimulatorEvents = {
  online: [hubId: string, welcome: WelcomeFrame];
  offline: [hubId: string, info: CloseInfo];
  command: [hubId: string, cmd: CommandFrame, outcome: CommandOutcome];
  failed: [hubId: string, reason: string];
};

// ---------------------------------------------------------------------------------------------
// Device kinds

type AttrSpec = { type: 'boolean' } | { type: 'number'; min: number; max: number };

interface KindSpec {
  kind: string;
  model: string;
  /** attributes a `set` may change */
  writable: Record<string, AttrSpec>;
  init(rnd: () => number): Attrs;
  /** the attributes that changed since `cur` in one report interval, and maybe an event */
  drift(cur: Attrs, rnd: () => number): Drift;
}

interface Drift {
  changes: Attrs;
  event?: { e: string; p?: Attrs };
}

const round1 = (x: number) => Math.round(x * 10) / 10;
const clamp = (x: number, min: number, max: number) => Math.min(max, Math.max(min, x));
const num = (a: Attrs, key: string, fallback: number) => {
  const v = a[key];
  return typeof v === 'number' ? v : fallback;
};

/** Sets `out[key]` when the value differs from the current one. */
function change(out: Attrs, cur: Attrs, key: string, value: number | boolean): void {
  if (cur[key] !== value) out[key] = value;
}

function drainBattery(out: Attrs, cur: Attrs, rnd: () => number): void {
  if (rnd() < 0.002) change(out, cur, 'battery', Math.max(0, num(cur, 'battery', 100) - 1));
}

const KINDS: readonly KindSpec[] = [
  {
    kind: 'sensor.temperature',
    model: 'TH-200',
    writable: {},
    init: (r) => ({ temperature: round1(18 + 6 * r()), humidity: Math.round(35 + 25 * r()), battery: Math.round(60 + 40 * r()) }),
    drift(cur, r): Drift {
      const changes: Attrs = {};
      change(changes, cur, 'temperature', round1(clamp(num(cur, 'temperature', 21) + (r() - 0.5) * 0.4, 10, 35)));
      if (r() < 0.3) change(changes, cur, 'humidity', clamp(num(cur, 'humidity', 45) + (r() < 0.5 ? -1 : 1), 15, 90));
      drainBattery(changes, cur, r);
      return { changes };
    },
  },
  {
    kind: 'sensor.door',
    model: 'DW-10',
    writable: {},
    init: (r) => ({ contact: true, battery: Math.round(60 + 40 * r()) }),
    drift(cur, r): Drift {
      const changes: Attrs = {};
      if (r() < 0.03) changes.contact = cur.contact !== true;
      drainBattery(changes, cur, r);
      return { changes };
    },
  },
  {
    kind: 'sensor.motion',
    model: 'PIR-3',
    writable: {},
    init: (r) => ({ motion: false, lux: Math.round(50 + 450 * r()) }),
    drift(cur, r): Drift {
      const changes: Attrs = {};
      let event: { e: string } | undefined;
      if (cur.motion === true) {
        if (r() < 0.5) changes.motion = false;
      } else if (r() < 0.05) {
        changes.motion = true;
        event = { e: 'motion' };
      }
      if (r() < 0.5) change(changes, cur, 'lux', Math.round(clamp(num(cur, 'lux', 200) * (0.95 + 0.1 * r()), 0, 2000)));
      return event ? { changes, event } : { changes };
    },
  },
  {
    kind: 'switch',
    model: 'SW-1',
    writable: { on: { type: 'boolean' } },
    init: (r) => ({ on: r() < 0.5 }),
    drift(cur, r): Drift {
      // someone at the wall switch
      return { changes: r() < 0.01 ? { on: cur.on !== true } : {} };
    },
  },
  {
    kind: 'plug',
    model: 'PLG-16',
    writable: { on: { type: 'boolean' } },
    init: (r) => {
      const on = r() < 0.5;
      return { on, power: on ? round1(5 + 145 * r()) : 0 };
    },
    drift(cur, r): Drift {
      const changes: Attrs = {};
      if (r() < 0.005) Object.assign(changes, plugPower(cur.on !== true, r));
      else if (cur.on === true) change(changes, cur, 'power', round1(clamp(num(cur, 'power', 60) * (0.97 + 0.06 * r()), 0.5, 3500)));
      return { changes };
    },
  },
  {
    kind: 'curtain',
    model: 'CM-2',
    writable: { position: { type: 'number', min: 0, max: 100 } },
    init: (r) => ({ position: r() < 0.5 ? 0 : 100 }),
    drift(cur, r): Drift {
      return { changes: r() < 0.005 ? diff(cur, { position: [0, 50, 100][Math.floor(r() * 3)] ?? 0 }) : {} };
    },
  },
  {
    kind: 'lock',
    model: 'LK-5',
    writable: { locked: { type: 'boolean' } },
    init: () => ({ locked: true }),
    drift(cur, r): Drift {
      return { changes: r() < 0.005 ? { locked: cur.locked !== true } : {} };
    },
  },
  {
    kind: 'sensor.water_leak',
    model: 'WL-1',
    writable: {},
    init: () => ({ leak: false }),
    drift(cur, r): Drift {
      if (cur.leak === true) return { changes: r() < 0.2 ? { leak: false } : {} };
      if (r() < 0.0005) return { changes: { leak: true }, event: { e: 'leak' } };
      return { changes: {} };
    },
  },
];

/** Attributes that follow from `on` for a plug: no power drawn when off. */
function plugPower(on: boolean, rnd: () => number): Attrs {
  return { on, power: on ? round1(5 + 145 * rnd()) : 0 };
}

/** The entries of `patch` whose value differs from `cur`. */
function diff(cur: Attrs, patch: Attrs): Attrs {
  const out: Attrs = {};
  for (const k in patch) if (cur[k] !== patch[k]) out[k] = patch[k]!;
  return out;
}

function isEmpty(o: object): boolean {
  for (const _ in o) return false;
  return true;
}

interface SimDevice {
  id: string;
  spec: KindSpec;
}

/** Validates a `set` against the kind's writable attributes: the patch, or why it is refused. */
function setPatch(dev: SimDevice, params: Record<string, unknown>): Attrs | string {
  const patch: Attrs = {};
  for (const [k, v] of Object.entries(params)) {
    const spec = dev.spec.writable[k];
    if (!spec) return `${dev.spec.kind} ${dev.id} has no writable attribute ${k}`;
    if (spec.type === 'boolean') {
      if (typeof v !== 'boolean') return `${k} must be a boolean`;
      patch[k] = v;
    } else {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < spec.min || v > spec.max) return `${k} must be a number in ${spec.min}..${spec.max}`;
      patch[k] = v;
    }
  }
  return patch;
}

// ---------------------------------------------------------------------------------------------
// Scheduler

interface Job {
  due: number;
  order: number;
  run: () => void;
  cancelled: boolean;
}

/** Every delayed action of the simulator on one timer: a binary min-heap by due time. */
class Scheduler {
  private readonly heap: Job[] = [];
  private timer: NodeJS.Timeout | null = null;
  private armedFor = Infinity;
  private order = 0;
  private stopped = false;

  constructor(private readonly onError: (err: unknown) => void) {}

  at(delayMs: number, run: () => void): Job {
    const job: Job = { due: Date.now() + Math.max(0, delayMs), order: this.order++, run, cancelled: false };
    if (this.stopped) {
      job.cancelled = true;
      return job;
    }
    this.heap.push(job);
    this.up(this.heap.length - 1);
    this.arm();
    return job;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.heap.length = 0;
  }

  private arm(): void {
    const top = this.heap[0];
    if (!top || this.stopped) return;
    if (this.timer && top.due >= this.armedFor) return;
    if (this.timer) clearTimeout(this.timer);
    this.armedFor = top.due;
    this.timer = setTimeout(() => this.fire(), Math.max(0, top.due - Date.now()));
  }

  private fire(): void {
    this.timer = null;
    this.armedFor = Infinity;
    const now = Date.now();
    while (!this.stopped && this.heap.length > 0 && this.heap[0]!.due <= now) {
      const job = this.pop();
      if (job.cancelled) continue;
      try {
        job.run();
      } catch (err) {
        this.onError(err);
      }
    }
    this.arm();
  }

  private less(a: Job, b: Job): boolean {
    return a.due < b.due || (a.due === b.due && a.order < b.order);
  }

  private up(i: number): void {
    const h = this.heap;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  private pop(): Job {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

// ---------------------------------------------------------------------------------------------
// Secrets kept across runs

interface SecretsFile {
  /** per admin API origin, per hub id */
  servers: Record<string, Record<string, string>>;
}

async function readSecrets(path: string | null): Promise<SecretsFile> {
  if (path === null) return { servers: {} };
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { servers: {} };
    throw err;
  }
  const parsed = JSON.parse(text) as Partial<SecretsFile>;
  if (typeof parsed !== 'object' || parsed === null || typeof parsed.servers !== 'object' || parsed.servers === null) {
    throw new Error(`${path}: not a simulator secrets file ({"servers": {...}})`);
  }
  return { servers: parsed.servers };
}

/** Merges this run's secrets into the file as it is now (another run may have written it). */
async function saveSecrets(path: string | null, origin: string, secrets: Map<string, string>): Promise<void> {
  if (path === null) return;
  const file = await readSecrets(path);
  const mine = (file.servers[origin] ??= {});
  for (const [hubId, secret] of secrets) mine[hubId] = secret;
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, path);
}

// ---------------------------------------------------------------------------------------------
// Simulator

type HubStatus = 'pending' | 'connecting' | 'online' | 'waiting' | 'failed' | 'stopped';

interface SimHub {
  id: string;
  homeId: string;
  client: HubClient;
  devices: SimDevice[];
  byId: Map<string, SimDevice>;
  status: HubStatus;
  /** consecutive failed connects, for the backoff */
  attempt: number;
  onlineSince: number;
  everOnline: boolean;
  /** the device list was sent in this boot */
  synced: boolean;
  /** the server asked for a reconnect after this many ms */
  reconnectAfter: number | null;
  /** the last close was a takeover by another connection of this hub */
  takenOver: boolean;
  reportJob: Job | null;
}

/** Connect refusals that a retry cannot fix: the hub is given up on. */
const PERMANENT = new Set(['bad_signature', 'hub_disabled', 'forbidden', 'unauthorized', 'unsupported_version', 'stale_timestamp', 'not_found']);
const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 30_000;
/** a session that lasted this long resets the backoff */
const STABLE_SESSION_MS = 10_000;
/** the server's per-frame limit on devices */
const DEVICES_PER_FRAME = 256;

export class Simulator extends EventEmitter<SimulatorEvents> {
  readonly hubs: readonly SimHub[] = [];
  private readonly counters = { reportsSent: 0, reportsAcked: 0, eventsSent: 0, refused: 0, commands: 0, reconnects: 0, connectFailures: 0 };
  private readonly rnd: () => number;
  private readonly out: (line: string) => void;
  private readonly scheduler: Scheduler;
  private readonly reportEveryMs: number;
  private readonly httpBase: string;
  private readonly secretsFile: string | null;
  private statusTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  private lastError: string | null = null;
  private window = { at: Date.now(), reports: 0 };

  constructor(private readonly opts: SimulatorOptions) {
    super();
    this.rnd = opts.random ?? Math.random;
    this.out = opts.out ?? (() => {});
    this.scheduler = new Scheduler((err) => this.out(`simulator: scheduled task failed: ${(err as Error).stack ?? String(err)}`));
    this.reportEveryMs = (opts.reportEverySec ?? 5) * 1000;
    this.httpBase = httpBaseOf(opts.url);
    this.secretsFile = opts.secretsFile === undefined ? '.sim-secrets.json' : opts.secretsFile;
  }

  stats(): SimulatorStats {
    let connected = 0;
    let failed = 0;
    for (const h of this.hubs) {
      if (h.status === 'online') connected++;
      else if (h.status === 'failed') failed++;
    }
    return { total: this.hubs.length, connected, failed, ...this.counters };
  }

  /** The client of a simulated hub (tests use it to look at its state). */
  client(hubId: string): HubClient | undefined {
    return this.hubs.find((h) => h.id === hubId)?.client;
  }

  /** Provisions the hubs, then connects them (at most `concurrency` at once); resolves when each tried once. */
  async start(): Promise<void> {
    const { hubs: count, devices, prefix = 'sim', firstIndex = 0 } = this.opts;
    const concurrency = Math.max(1, this.opts.concurrency ?? 32);
    const ids: Array<{ hubId: string; homeId: string }> = [];
    for (let i = firstIndex; i < firstIndex + count; i++) {
      const hubId = `${prefix}-${i}`;
      if (!ID_PATTERN.test(hubId)) throw new Error(`hub id ${hubId}: the prefix must make ids of 1..64 characters [A-Za-z0-9_-]`);
      ids.push({ hubId, homeId: `home-${Math.floor(i / 10)}` });
    }

    const origin = this.httpBase;
    const known = (await readSecrets(this.secretsFile)).servers[origin] ?? {};
    const fresh = new Map<string, string>();
    let reused = 0;
    const secrets = await mapLimit(ids, concurrency, async ({ hubId, homeId }) => {
      const created = await this.provision(hubId, homeId);
      if (created !== null) {
        fresh.set(hubId, created);
        return created;
      }
      const secret = known[hubId];
      if (secret === undefined) {
        const file = this.secretsFile ?? '(no secrets file)';
        this.out(`${hubId}: already provisioned on ${origin}, but its secret is not in ${file}: skipped (use another --prefix, another --secrets file that has it, or a fresh server)`);
        return null;
      }
      reused++;
      return secret;
    });
    if (fresh.size > 0) await saveSecrets(this.secretsFile, origin, fresh);

    const hubs = this.hubs as SimHub[];
    ids.forEach(({ hubId, homeId }, i) => {
      const secret = secrets[i];
      if (secret === null || secret === undefined) return;
      hubs.push(this.makeHub(hubId, homeId, secret, devices));
    });
    this.out(`provisioned ${hubs.length}/${ids.length} hubs on ${origin} (${fresh.size} new, ${reused} with saved secrets, ${ids.length - hubs.length} skipped)`);

    const every = this.opts.statusEverySec ?? 5;
    if (every > 0) {
      this.statusTimer = setInterval(() => this.out(this.statusLine()), every * 1000);
      this.statusTimer.unref();
    }
    await mapLimit(hubs, concurrency, (hub) => this.connectHub(hub));
  }

  /** Says bye on every session, stops the timers; resolves when every socket has closed. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.scheduler.stop();
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.statusTimer = null;
    await Promise.all(
      this.hubs.map(async (hub) => {
        const client = hub.client;
        if (client.connected) await withDeadline(client.bye('simulator stopping'), 2_000, () => client.terminate());
        else await withDeadline(client.close(), 2_000, () => client.terminate());
        if (hub.status !== 'failed') hub.status = 'stopped';
      }),
    );
  }

  statusLine(): string {
    const s = this.stats();
    const now = Date.now();
    const rate = ((s.reportsSent - this.window.reports) * 1000) / Math.max(1_000, now - this.window.at);
    this.window = { at: now, reports: s.reportsSent };
    let line = `sim: ${s.connected}/${s.total} connected | ${rate.toFixed(1)} reports/s | ${s.commands} commands | ${s.reconnects} reconnects`;
    if (s.failed > 0) line += ` | ${s.failed} failed`;
    if (s.refused > 0) line += ` | ${s.refused} frames refused`;
    if (this.lastError !== null) line += ` | ${s.connectFailures} connect failures, last: ${this.lastError}`;
    this.lastError = null;
    return line;
  }

  /** POST /v1/admin/hubs: the new secret, or null when the hub exists already. */
  private async provision(hubId: string, homeId: string): Promise<string | null> {
    const url = `${this.httpBase}/v1/admin/hubs`;
    let res: Response;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${this.opts.adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ hubId, homeId, model: 'sim-hub' }),
      });
    } catch (err) {
      throw new Error(`cannot reach ${url}: ${causeMessage(err)}`, { cause: err });
    }
    const body = (await res.json().catch(() => ({}))) as { secret?: unknown; code?: unknown; message?: unknown };
    if (res.status === 201 && typeof body.secret === 'string') return body.secret;
    if (res.status === 409 && body.code === 'already_exists') return null;
    if (res.status === 401 || res.status === 403) throw new Error(`the admin API at ${url} refused the admin token (${res.status} ${String(body.code ?? '')})`);
    throw new Error(`provisioning ${hubId}: ${res.status} ${String(body.code ?? '')} ${String(body.message ?? '')}`.trim());
  }

  private makeHub(hubId: string, homeId: string, secret: string, deviceCount: number): SimHub {
    const client = new HubClient({ url: this.opts.url, hubId, secret, fw: 'sim-1.0' });
    const devices: SimDevice[] = [];
    for (let j = 0; j < deviceCount; j++) {
      const spec = KINDS[j % KINDS.length]!;
      const dev = { id: `dev-${j}`, spec };
      devices.push(dev);
      client.state.set(dev.id, spec.init(this.rnd));
    }
    const hub: SimHub = {
      id: hubId,
      homeId,
      client,
      devices,
      byId: new Map(devices.map((d) => [d.id, d])),
      status: 'pending',
      attempt: 0,
      onlineSince: 0,
      everOnline: false,
      synced: false,
      reconnectAfter: null,
      takenOver: false,
      reportJob: null,
    };
    client.onCommand((cmd) => this.execute(hub, cmd));
    client.on('close', (info) => this.onClose(hub, info));
    client.on('bye', (f) => {
      hub.takenOver = f.e === 'session_taken_over';
    });
    client.on('reconnect', (f) => {
      // the server asks to come back later: close now, the close handler waits `after`
      hub.reconnectAfter = f.after;
      void client.close(1000, 'reconnect');
    });
    client.on('errorFrame', (f) => {
      if (f.ref === undefined && f.e !== 'sequence_gap') this.lastError = `${hubId}: server error ${f.e}: ${f.msg ?? ''}`;
    });
    return hub;
  }

  /** One connection attempt; on failure the next one is scheduled. Never rejects. */
  private async connectHub(hub: SimHub): Promise<void> {
    if (this.stopping || hub.status === 'failed' || hub.status === 'online' || hub.status === 'connecting') return;
    hub.status = 'connecting';
    const client = hub.client;
    const ackedBefore = client.acked;
    let welcome: WelcomeFrame;
    try {
      welcome = await client.connect();
    } catch (err) {
      await this.onConnectFailed(hub, err);
      return;
    }
    if (this.stopping) return;
    if (!client.connected) {
      hub.status = 'waiting';
      this.retry(hub);
      return;
    }
    hub.status = 'online';
    hub.onlineSince = Date.now();
    hub.takenOver = false;
    if (hub.everOnline) this.counters.reconnects++;
    hub.everOnline = true;
    // the server lost this boot's frames (restart without persistence): send everything again
    if (!hub.synced || welcome.s < ackedBefore) this.sync(hub);
    this.applyDelta(hub, welcome.dl);
    if (hub.reportJob === null) this.scheduleReport(hub, this.rnd() * this.reportEveryMs);
    this.emit('online', hub.id, welcome);
  }

  private async onConnectFailed(hub: SimHub, err: unknown): Promise<void> {
    this.counters.connectFailures++;
    if (this.stopping) {
      hub.status = 'stopped';
      return;
    }
    const code = err instanceof HubClientError ? err.code : 'connect_failed';
    const message = err instanceof Error ? err.message : String(err);
    this.lastError = message;
    if (code === 'unknown_hub') {
      // the server forgot the hub (restarted without persistence): provision it again
      try {
        const secret = await this.provision(hub.id, hub.homeId);
        if (secret === null) return this.fail(hub, 'it was provisioned again by someone else; its new secret is unknown');
        hub.client.secret = secret;
        hub.attempt = 0; // fixed: come back soon rather than after the backoff built up while it was away
        await saveSecrets(this.secretsFile, this.httpBase, new Map([[hub.id, secret]]));
      } catch (e) {
        this.lastError = `${hub.id}: ${(e as Error).message}`;
      }
    } else if (PERMANENT.has(code)) {
      return this.fail(hub, message);
    }
    if (this.stopping) return;
    hub.status = 'waiting';
    this.retry(hub);
  }

  private fail(hub: SimHub, reason: string): void {
    hub.status = 'failed';
    this.out(`${hub.id}: ${reason}: giving up on this hub`);
    this.emit('failed', hub.id, reason);
  }

  private onClose(hub: SimHub, info: CloseInfo): void {
    // failed connects are handled by connectHub; this is a drop of a session that was online
    if (hub.status !== 'online') return;
    hub.status = 'waiting';
    this.emit('offline', hub.id, info);
    if (this.stopping) return;
    if (Date.now() - hub.onlineSince >= STABLE_SESSION_MS && !hub.takenOver) hub.attempt = 0;
    this.retry(hub);
  }

  /** Schedules the next connect: the server's `after` if it gave one, else full-jitter backoff. */
  private retry(hub: SimHub): void {
    let delay: number;
    if (hub.reconnectAfter !== null) {
      delay = hub.reconnectAfter + this.rnd() * BACKOFF_BASE_MS;
      hub.reconnectAfter = null;
    } else {
      delay = this.rnd() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(hub.attempt, 16));
      hub.attempt++;
    }
    this.scheduler.at(delay, () => {
      this.connectHub(hub).catch((err: unknown) => this.out(`${hub.id}: reconnect failed: ${(err as Error).stack ?? String(err)}`));
    });
  }

  /** The full device list and every device's state. */
  private sync(hub: SimHub): void {
    const client = hub.client;
    const infos = hub.devices.map((d) => ({ d: d.id, k: d.spec.kind, m: d.spec.model }));
    for (let i = 0; i < Math.max(1, infos.length); i += DEVICES_PER_FRAME) {
      const j = infos.slice(i, i + DEVICES_PER_FRAME);
      this.track(i === 0 ? client.devices({ f: true, j }) : client.devices({ j }));
    }
    for (let i = 0; i < hub.devices.length; i += DEVICES_PER_FRAME) {
      const r: Record<string, Attrs> = {};
      for (const d of hub.devices.slice(i, i + DEVICES_PER_FRAME)) r[d.id] = { ...client.state.get(d.id) };
      this.sendReport(hub, r);
    }
    hub.synced = true;
  }

  /** Applies the welcome's desired delta (writable attributes only) and reports the result. */
  private applyDelta(hub: SimHub, dl: Record<string, Attrs>): void {
    const report: Record<string, Attrs> = {};
    for (const [deviceId, want] of Object.entries(dl)) {
      const dev = hub.byId.get(deviceId);
      if (!dev) continue;
      const patch: Attrs = {};
      for (const [k, v] of Object.entries(want)) {
        const ok = setPatch(dev, { [k]: v });
        if (typeof ok !== 'string') Object.assign(patch, ok);
      }
      const changes = this.apply(hub, dev, patch);
      if (!isEmpty(changes)) report[deviceId] = changes;
    }
    if (!isEmpty(report)) this.sendReport(hub, report);
  }

  /** Merges a patch (plus what follows from it) into the device's state; returns what changed. */
  private apply(hub: SimHub, dev: SimDevice, patch: Attrs): Attrs {
    const cur = hub.client.state.get(dev.id) ?? {};
    let full = patch;
    if (dev.spec.kind === 'plug' && typeof patch.on === 'boolean' && patch.on !== cur.on) full = { ...plugPower(patch.on, this.rnd), ...patch };
    const changes = diff(cur, full);
    if (!isEmpty(changes)) hub.client.state.set(dev.id, { ...cur, ...changes });
    return changes;
  }

  private execute(hub: SimHub, cmd: CommandFrame): CommandOutcome {
    const outcome = this.outcome(hub, cmd);
    this.counters.commands++;
    this.emit('command', hub.id, cmd, outcome);
    return outcome;
  }

  private outcome(hub: SimHub, cmd: CommandFrame): CommandOutcome {
    const dev = hub.byId.get(cmd.d);
    if (!dev) return { ok: false, e: 'unknown_device', msg: `hub ${hub.id} has no device ${cmd.d}` };
    let patch: Attrs | string;
    if (cmd.m === 'set') patch = setPatch(dev, cmd.p);
    else if (cmd.m === 'toggle' && 'on' in dev.spec.writable) patch = { on: hub.client.state.get(dev.id)?.on !== true };
    else return { ok: false, e: 'command_failed', msg: `${dev.spec.kind} ${dev.id} does not support ${cmd.m}` };
    if (typeof patch === 'string') return { ok: false, e: 'command_failed', msg: patch };
    const changes = this.apply(hub, dev, patch);
    // the client sends a synchronous answer before this microtask runs: result first, then report
    if (!isEmpty(changes)) queueMicrotask(() => this.sendReport(hub, { [dev.id]: changes }));
    return { ok: true, r: { ...hub.client.state.get(dev.id) } };
  }

  private scheduleReport(hub: SimHub, delayMs: number): void {
    hub.reportJob = this.scheduler.at(delayMs, () => this.tick(hub));
  }

  /** One report interval of a hub: drift every device, report what changed, send events. */
  private tick(hub: SimHub): void {
    hub.reportJob = null;
    if (hub.status !== 'online' || this.stopping) return; // rescheduled when it comes back
    const client = hub.client;
    const report: Record<string, Attrs> = {};
    const events: Array<{ d: string; e: string; p?: Attrs }> = [];
    for (const dev of hub.devices) {
      const cur = client.state.get(dev.id) ?? {};
      const { changes, event } = dev.spec.drift(cur, this.rnd);
      if (!isEmpty(changes)) report[dev.id] = changes;
      if (event) events.push({ d: dev.id, ...event });
    }
    if (!isEmpty(report)) this.sendReport(hub, report);
    for (const ev of events) {
      this.counters.eventsSent++;
      this.track(client.event(ev.d, ev.e, ev.p));
    }
    this.scheduleReport(hub, this.reportEveryMs * (0.8 + 0.4 * this.rnd()));
  }

  private sendReport(hub: SimHub, r: Record<string, Attrs>): void {
    if (!hub.client.connected) return;
    this.counters.reportsSent++;
    this.track(hub.client.report(r), () => this.counters.reportsAcked++);
  }

  /** Counts the outcome of a sequenced frame; a refused or unsent frame stays queued for a resend. */
  private track(p: Promise<number>, onAck?: () => void): void {
    p.then(onAck, (err: unknown) => {
      if (err instanceof HubClientError && err.temporary === true) this.counters.refused++;
    });
  }
}

/** Creates and starts a simulator. */
export async function runSimulator(opts: SimulatorOptions): Promise<Simulator> {
  const sim = new Simulator(opts);
  try {
    await sim.start();
  } catch (err) {
    await sim.stop();
    throw err;
  }
  return sim;
}

/** `ws://h:p/...` → `http://h:p`, `wss://` → `https://`. */
export function httpBaseOf(wsUrl: string): string {
  const u = new URL(wsUrl);
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new Error(`--url must be ws:// or wss://, got ${wsUrl}`);
  return `${u.protocol === 'wss:' ? 'https:' : 'http:'}//${u.host}`;
}

function causeMessage(err: unknown): string {
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof Error) return cause.message;
  return err instanceof Error ? err.message : String(err);
}

/** Runs `fn` over `items` with at most `limit` in flight; results in input order. */
async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Waits for `p`, or calls `onLate` and waits for its result after `ms`. */
async function withDeadline<T>(p: Promise<T>, ms: number, onLate: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(onLate()), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}
