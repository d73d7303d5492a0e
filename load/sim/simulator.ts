import { EventEmitter } from 'node:events';
import { ID_PATTERN, TimerWheel, type CommandFrame, type WelcomeFrame } from '../../src/index.js';
import { mapLimit, withDeadline } from '../lib/async.js';
import { AdminClient, AdminError } from '../wire/admin.js';
import { HubClient, HubClientError, type CloseInfo, type CommandOutcome } from '../wire/hub-client.js';
import { SimHub } from './sim-hub.js';
import { defaultRegistry, loadSecrets, saveSecrets } from './secrets.js';

/**
 * The hub simulator: provisions hubs through the admin API, connects them, keeps plausible
 * sub-device state drifting (sim-hub.ts, physics.ts), executes commands and reconnects with
 * backoff. Every hub's reports and reconnects are timers on one timer wheel (the node's own), so
 * hundreds of hubs cost one interval (plus each client's heartbeat timer). The CLI is
 * `load/sim.ts`; tests run `runSimulator` in-process.
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
  /**
   * The registry the hubs are in, naming their secrets in the file: the same for every node of
   * one cluster. @default derived from the admin token (secrets.ts: `defaultRegistry`)
   */
  registry?: string;
  /** @default none: receives per-hub problems and the provisioning summary */
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

/** Connect refusals that a retry cannot fix: the hub is given up on. */
const PERMANENT = new Set(['bad_signature', 'hub_disabled', 'forbidden', 'unauthorized', 'unsupported_version', 'stale_timestamp', 'not_found']);
const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 30_000;
/** a session that lasted this long resets the backoff */
const STABLE_SESSION_MS = 10_000;

export class Simulator extends EventEmitter<SimulatorEvents> {
  readonly hubs: readonly SimHub[] = [];
  /** the registry name the secrets are saved under */
  readonly registry: string;
  private readonly counters = { reportsSent: 0, reportsAcked: 0, eventsSent: 0, refused: 0, commands: 0, reconnects: 0, connectFailures: 0 };
  private readonly rnd: () => number;
  private readonly out: (line: string) => void;
  private readonly timers: TimerWheel;
  private readonly admin: AdminClient;
  private readonly secretsFile: string | null;
  private stopping = false;
  private lastError: string | null = null;
  private window = { at: Date.now(), reports: 0 };

  constructor(private readonly opts: SimulatorOptions) {
    super();
    this.rnd = opts.random ?? Math.random;
    this.out = opts.out ?? (() => {});
    this.timers = new TimerWheel({ tickMs: 20, onError: (err) => this.out(`simulator: scheduled task failed: ${(err as Error).stack ?? String(err)}`) });
    if (!/^wss?:\/\//.test(opts.url)) throw new Error(`--url must be ws:// or wss://, got ${opts.url}`);
    this.admin = new AdminClient(opts.url, opts.adminToken, { pooled: true });
    this.secretsFile = opts.secretsFile === undefined ? '.sim-secrets.json' : opts.secretsFile;
    this.registry = opts.registry ?? defaultRegistry(opts.adminToken);
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

    const known = await loadSecrets(this.secretsFile, this.registry, this.admin.base);
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
        this.out(`${hubId}: already provisioned in registry ${this.registry}, but its secret is not in ${file}: skipped (use another --prefix, the --registry and --secrets that have it, or a fresh server)`);
        return null;
      }
      reused++;
      return secret;
    });
    await saveSecrets(this.secretsFile, this.registry, fresh);

    const hubs = this.hubs as SimHub[];
    ids.forEach(({ hubId, homeId }, i) => {
      const secret = secrets[i];
      if (secret === null || secret === undefined) return;
      hubs.push(this.makeHub(hubId, homeId, secret, devices));
    });
    this.out(`provisioned ${hubs.length}/${ids.length} hubs on ${this.admin.base}, registry ${this.registry} (${fresh.size} new, ${reused} with saved secrets, ${ids.length - hubs.length} skipped)`);
    await mapLimit(hubs, concurrency, (hub) => this.connectHub(hub));
  }

  /** Says bye on every session, stops the timers; resolves when every socket has closed. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.timers.close();
    await Promise.all(
      this.hubs.map(async (hub) => {
        const client = hub.client;
        if (client.connected) await withDeadline(client.bye('simulator stopping'), 2_000, () => client.terminate());
        else await withDeadline(client.close(), 2_000, () => client.terminate());
        if (hub.status !== 'failed') hub.status = 'stopped';
      }),
    );
  }

  /** One line of what happened since the previous call (the CLI prints it every few seconds). */
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

  /** The new secret, or null when the hub exists already; throws when the admin API refuses. */
  private async provision(hubId: string, homeId: string): Promise<string | null> {
    try {
      const done = await this.admin.provisionHub(hubId, homeId, 'sim-hub');
      return 'secret' in done ? done.secret : null;
    } catch (err) {
      if (err instanceof AdminError && (err.status === 401 || err.status === 403)) {
        throw new Error(`the admin API at ${this.admin.base} refused the admin token (${err.status} ${err.code})`, { cause: err });
      }
      throw err;
    }
  }

  private makeHub(hubId: string, homeId: string, secret: string, deviceCount: number): SimHub {
    const client = new HubClient({ url: this.opts.url, hubId, secret, fw: 'sim-1.0' });
    const hub = new SimHub(hubId, homeId, client, deviceCount, {
      timers: this.timers,
      rnd: this.rnd,
      reportEveryMs: (this.opts.reportEverySec ?? 5) * 1000,
      counters: this.counters,
      commanded: (h, cmd, outcome) => this.emit('command', h.id, cmd, outcome),
      reconnectDue: (h) => {
        this.connectHub(h).catch((err: unknown) => this.out(`${h.id}: reconnect failed: ${(err as Error).stack ?? String(err)}`));
      },
    });
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
    hub.welcomed(welcome.s, ackedBefore, welcome.dl);
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
    // a node tells an id it does not know as a bad signature (ids cannot be probed); an older one said unknown_hub
    if (code === 'unknown_hub' || code === 'bad_signature') {
      // the server forgot the hub (restarted without persistence): provision it again; known, its secret was changed
      try {
        const secret = await this.provision(hub.id, hub.homeId);
        if (secret === null) return this.fail(hub, code === 'bad_signature' ? `${message}: the hub is provisioned with another secret (changed by someone else)` : 'it was provisioned again by someone else; its new secret is unknown');
        hub.client.secret = secret;
        hub.attempt = 0; // fixed: come back soon rather than after the backoff built up while it was away
        await saveSecrets(this.secretsFile, this.registry, new Map([[hub.id, secret]]));
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
    hub.reconnectIn(delay);
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
