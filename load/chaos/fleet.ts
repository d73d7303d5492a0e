import { FrameType, type ServerToHubFrame } from '../../src/index.js';
import { mapLimit, sleep } from '../lib/async.js';
import { AdminClient } from '../wire/admin.js';
import { HubClient, HubClientError } from '../wire/hub-client.js';
import { ChaosHub, commit, deviceId, deviceKey, phaseOf } from './chaos-hub.js';
import type { ChaosCluster, ChaosNode } from './cluster.js';
import { bump, counts, newLedger, type Ledger } from './ledger.js';
import { SendOrder } from './send-order.js';
import { readCounters, verifyShadow } from './shadow-check.js';
import type { Random } from './random.js';

/**
 * The hubs of a chaos run, each a `HubClient` (one boot id for the whole run, so a reconnect
 * resumes its sequence numbers and resends what was not acknowledged). Every report sets one
 * device's counter attribute `n` to the next integer, so for each device the largest `n` the
 * server acknowledged is known exactly; the shadow must hold at least that.
 *
 * When a session ends (node killed, drained, anything), the hub reconnects with backoff to another
 * node that is up (its own again when it is the only one), or after the `reconnect` hint's delay.
 * Before it sends anything on the new session it reads its shadow through a node other than its
 * own when there is one and counts, per device, the acknowledged reports missing from it: nothing
 * of this hub can reach the store (Redis, or the embedded node's disk) between the close and that
 * read, so later reports cannot hide a loss. The count goes to the ledger of the process the hub
 * was on.
 */

export interface FleetOptions {
  hubs: number;
  devices: number;
  /** ms between two reports of one hub */
  reportMs: number;
  /** hub ids `<prefix>-<i>`, homes `<prefix>-home-<i/10>` */
  prefix: string;
}

/** Past this many unacknowledged frames a hub waits instead of sending more. */
const MAX_UNACKED = 64;
const TICK_MS = 25;
const MAX_CONNECT_ATTEMPTS = 200;

/** The hub's session runs and its socket is open. */
const online = (h: ChaosHub) => h.phase === 'running' && h.client.connected;

/** Online, with its oldest unacknowledged report sent before `before` (performance.now()). */
const waiting = (h: ChaosHub, before: number) => online(h) && h.pending.length > 0 && h.pending[0]!.at < before;

export class HubFleet {
  readonly hubs: ChaosHub[] = [];
  /** ledgers of ended sessions by the pid of the node process they were on */
  readonly byPid = new Map<number, Ledger>();
  /** what the final check found beyond what the reconnect checks had counted */
  readonly end = newLedger();
  /** sessions the run closed itself (`blip`), whatever process they were on */
  readonly blips = newLedger();
  readonly stats = {
    reportsSent: 0,
    /** close codes of ended sessions */
    closes: counts(),
    connectErrors: counts(),
    errorFrames: counts(),
    /** hubs that stopped reconnecting after MAX_CONNECT_ATTEMPTS */
    gaveUp: 0,
  };
  /** when each counter value was sent and resent (the apps' check of old values after new ones) */
  readonly order = new SendOrder();
  private stopping = false;
  private ticker: NodeJS.Timeout | null = null;
  private trigger: { pid: number; maxAgeMs: number; resolve: (fresh: boolean) => void } | null = null;

  constructor(
    private readonly cluster: ChaosCluster,
    private readonly rng: Random,
    readonly opts: FleetOptions,
  ) {}

  hubIds(): string[] {
    return this.hubs.map((h) => h.id);
  }

  homeOf(index: number): string {
    return `${this.opts.prefix}-home-${Math.floor(index / 10)}`;
  }

  homes(): string[] {
    return [...new Set(this.hubs.map((h) => this.homeOf(h.index)))];
  }

  /** Per home (only `home` when given), each device's largest counter value sent (`sent`) or acknowledged (`acked`), by `deviceKey`. */
  counters(which: 'sent' | 'acked', only?: string): Map<string, Map<string, number>> {
    const out = new Map<string, Map<string, number>>();
    for (const h of this.hubs) {
      const home = this.homeOf(h.index);
      if (only !== undefined && home !== only) continue;
      let m = out.get(home);
      if (!m) out.set(home, (m = new Map()));
      h[which].forEach((n, dev) => m.set(deviceKey(h.id, deviceId(dev)), n));
    }
    return out;
  }

  /** Provisions every hub through node 0 (16 requests at a time). */
  async provision(): Promise<void> {
    const admin = this.admin(this.cluster.nodes[0]!);
    const indexes = Array.from({ length: this.opts.hubs }, (_, i) => i);
    const secrets = await mapLimit(indexes, 16, async (i) => {
      const done = await admin.provisionHub(`${this.opts.prefix}-${i}`, this.homeOf(i));
      if (!('secret' in done)) throw new Error(`provisioning ${this.opts.prefix}-${i}: it exists already`);
      return done.secret;
    });
    for (let i = 0; i < this.opts.hubs; i++) {
      const client = new HubClient({ url: this.cluster.nodes[0]!.wsUrl, hubId: `${this.opts.prefix}-${i}`, secret: secrets[i]!, autoResend: false });
      const hub = new ChaosHub(i, client, this.opts.devices);
      client.on('frame', (f: ServerToHubFrame) => {
        if (f.t !== FrameType.ack && f.t !== FrameType.welcome) return;
        const sentAt = hub.advance(f.s);
        const t = this.trigger;
        if (t && f.t === FrameType.ack && hub.pid === t.pid && sentAt > 0 && performance.now() - sentAt <= t.maxAgeMs) {
          this.trigger = null;
          t.resolve(true);
        }
      });
      client.on('welcome', () => {
        hub.phase = 'welcomed';
        hub.session++;
      });
      client.on('reconnect', (f) => (hub.hint = f.after));
      client.on('errorFrame', (f) => bump(this.stats.errorFrames, f.e));
      client.on('close', (info) => this.onClose(hub, info.code));
      this.hubs.push(hub);
    }
  }

  /** Connects hub i to node i mod K; resolves when all are online, or rejects after `timeoutMs`. */
  async connectAll(timeoutMs: number): Promise<void> {
    for (const hub of this.hubs) this.connect(hub, this.cluster.nodes[hub.index % this.cluster.nodes.length]);
    await this.waitFor(() => this.hubs.every((h) => h.phase === 'running'), timeoutMs, 'every hub online');
  }

  startReports(): void {
    const now = Date.now();
    for (const h of this.hubs) h.nextReportAt = now + this.rng.next() * this.opts.reportMs;
    this.ticker = setInterval(() => this.tick(), TICK_MS);
  }

  stopReports(): void {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = null;
  }

  /**
   * Resolves true at the first ack from process `pid` for a report sent at most `maxAgeMs`
   * before: that process is taking reports and acknowledging them now. Signalled at that moment,
   * a node is hit under flowing traffic rather than in a pause of this load generator (which
   * shares a loaded machine with the nodes). False after `timeoutMs` without such an ack.
   */
  whenFlowing(pid: number, maxAgeMs: number, timeoutMs: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.trigger = null;
        resolve(false);
      }, timeoutMs);
      this.trigger = {
        pid,
        maxAgeMs,
        resolve: (fresh) => {
          clearTimeout(timer);
          resolve(fresh);
        },
      };
    });
  }

  /** Hubs whose session is on this process now. */
  onProcess(pid: number): number {
    return this.hubs.filter((h) => h.pid === pid && (h.phase === 'welcomed' || h.phase === 'running')).length;
  }

  /**
   * Hubs online whose oldest unacknowledged report was sent more than `olderThanMs` ago: a node
   * that takes reports without acknowledging them (nothing lost, nothing stored) shows here.
   */
  stalled(olderThanMs: number): number {
    const before = performance.now() - olderThanMs;
    return this.hubs.filter((h) => waiting(h, before)).length;
  }

  /**
   * Drops the sockets of `count` hubs online, chosen at random, from the hub's side, as a flaky
   * network does: each reconnects (to another node when there is one) and checks its shadow. A
   * hub that reconnects opens a new session epoch; restarts after that must keep fencing right.
   */
  blip(count: number): number {
    const up = this.hubs.filter(online);
    let n = 0;
    for (; n < count && up.length > 0; n++) {
      const hub = up.splice(this.rng.int(up.length), 1)[0]!;
      hub.blipping = true;
      void hub.client.terminate();
    }
    return n;
  }

  /**
   * Drops, from the hub's side, the sockets of hubs on process `pid` whose oldest report has gone
   * unacknowledged for `silenceMs`, as firmware gives up on a silent server; each reconnects to
   * another node. Returns how many.
   */
  abandonSilent(pid: number, silenceMs: number): number {
    const before = performance.now() - silenceMs;
    const silent = this.hubs.filter((h) => h.pid === pid && waiting(h, before));
    for (const hub of silent) void hub.client.terminate();
    return silent.length;
  }

  ledger(pid: number): Ledger {
    let l = this.byPid.get(pid);
    if (!l) this.byPid.set(pid, (l = newLedger()));
    return l;
  }

  /** Hubs online now. */
  online(): number {
    return this.hubs.filter(online).length;
  }

  /** True once every hub is online with no check due; false after `timeoutMs`. */
  async waitOnline(timeoutMs: number): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (!this.hubs.every((h) => online(h) && h.ended === null)) {
      if (Date.now() > until) return false;
      await sleep(50);
    }
    return true;
  }

  /** True once no hub is on process `pid` or has a check for it due, and every hub is online; false after `timeoutMs`. */
  async waitBack(pid: number, timeoutMs: number): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (!this.hubs.every((h) => h.pid !== pid && h.ended?.pid !== pid && h.phase === 'running')) {
      if (Date.now() > until) return false;
      await sleep(50);
    }
    return true;
  }

  /**
   * The end of the run: reports are stopped; waits until every hub is online with nothing
   * unacknowledged (resending what is left every 2 s), then checks every shadow. Returns the hubs
   * that did not get there.
   */
  async finalCheck(timeoutMs: number): Promise<number> {
    this.stopReports();
    const until = Date.now() + timeoutMs;
    let nudged = Date.now();
    const idle = (h: ChaosHub) => h.phase === 'running' && h.client.connected && h.client.unackedCount === 0;
    while (!this.hubs.every(idle) && Date.now() < until) {
      if (Date.now() - nudged > 2_000) {
        nudged = Date.now();
        for (const h of this.hubs) if (h.phase === 'running' && h.client.unackedCount > 0) this.resend(h, 0);
      }
      await sleep(50);
    }
    const notIdle = this.hubs.filter((h) => !idle(h)).length;
    await mapLimit(this.hubs, 8, async (hub) => {
      const found = await this.verify(hub);
      if (found === null) {
        this.end.unreadable++;
        return;
      }
      commit(hub, found.missing);
      this.end.checked++;
      this.end.lost += found.lost;
      this.end.late += found.late;
      if (found.lost > 0) this.end.hubsWithLoss++;
    });
    return notIdle;
  }

  /** Stops reconnecting and drops every socket. */
  async close(): Promise<void> {
    this.stopping = true;
    this.stopReports();
    await Promise.allSettled(this.hubs.map((h) => h.client.terminate()));
  }

  private tick(): void {
    const now = Date.now();
    for (const hub of this.hubs) {
      if (hub.phase !== 'running' || now < hub.nextReportAt || !hub.client.connected || hub.client.unackedCount >= MAX_UNACKED) continue;
      const dev = hub.nextDev;
      hub.nextDev = (dev + 1) % this.opts.devices;
      const n = ++hub.sent[dev]!;
      void hub.client.report({ [deviceId(dev)]: { n } });
      this.order.sent(deviceKey(hub.id, deviceId(dev)), n);
      hub.pending.push({ seq: hub.client.seq, dev, n, at: performance.now() });
      this.stats.reportsSent++;
      hub.nextReportAt = Math.max(hub.nextReportAt + this.opts.reportMs, now - this.opts.reportMs);
    }
  }

  private onClose(hub: ChaosHub, code: number): void {
    // a failed connect closes too: connectOnce's rejection schedules that retry
    if (hub.phase !== 'welcomed' && hub.phase !== 'running') return;
    bump(this.stats.closes, String(code));
    hub.phase = 'offline';
    const blip = hub.blipping;
    hub.blipping = false;
    (blip ? this.blips : this.ledger(hub.pid)).sessionsEnded++;
    hub.ended ??= { pid: hub.pid, blip, ackedSeq: hub.client.acked, at: Date.now(), cursorCounted: false };
    this.schedule(hub, hub.hint ?? this.backoff(0));
  }

  private backoff(attempt: number): number {
    // real hubs start at 1 s and double up to minutes; compressed here to keep a run short
    return Math.min(4_000, 200 * 2 ** attempt) * (0.5 + this.rng.next());
  }

  private schedule(hub: ChaosHub, delayMs: number): void {
    if (this.stopping) return;
    if (++hub.attempts > MAX_CONNECT_ATTEMPTS) {
      this.stats.gaveUp++;
      return;
    }
    setTimeout(() => this.connect(hub), delayMs);
  }

  /** One connection attempt; a fault of this tool itself is counted and retried, never unhandled. */
  private connect(hub: ChaosHub, target?: ChaosNode): void {
    this.connectOnce(hub, target).catch(() => {
      bump(this.stats.connectErrors, 'chaos_internal');
      hub.phase = 'offline';
      void hub.client.terminate();
      this.schedule(hub, this.backoff(hub.attempts));
    });
  }

  /** A node that is up, other than the hub's last one when there is a choice. */
  private pickNode(exclude: number): ChaosNode | undefined {
    const up = this.cluster.up();
    const others = up.filter((n) => n.index !== exclude);
    return this.rng.pick(others.length > 0 ? others : up);
  }

  private async connectOnce(hub: ChaosHub, target?: ChaosNode): Promise<void> {
    if (this.stopping) return;
    const node = target ?? this.pickNode(hub.node);
    if (!node) {
      this.schedule(hub, this.backoff(hub.attempts));
      return;
    }
    hub.node = node.index;
    hub.pid = node.proc.pid;
    hub.phase = 'connecting';
    hub.hint = null;
    let welcomeS: number;
    try {
      welcomeS = (await hub.client.connect(node.wsUrl)).s;
    } catch (err) {
      bump(this.stats.connectErrors, err instanceof HubClientError ? err.code : 'error');
      if (hub.phase === 'connecting') {
        hub.phase = 'offline';
        this.schedule(hub, this.backoff(hub.attempts));
      }
      return;
    }
    // the 'welcome' listener made it 'welcomed'; a close since then has scheduled the next attempt
    if (phaseOf(hub) !== 'welcomed') return;
    const session = hub.session;
    hub.attempts = 0;
    const ended = hub.ended;
    if (ended) {
      const ledger = ended.blip ? this.blips : this.ledger(ended.pid);
      if (!ended.cursorCounted) {
        ended.cursorCounted = true;
        if (welcomeS < ended.ackedSeq) {
          ledger.cursorBehind++;
          ledger.cursorFramesBehind += ended.ackedSeq - welcomeS;
        }
      }
      const found = await this.verify(hub);
      // closed again while reading: the next welcome checks (nothing was sent meanwhile)
      if (hub.session !== session || phaseOf(hub) !== 'welcomed') return;
      if (found === null) ledger.unreadable++;
      else {
        commit(hub, found.missing);
        ledger.checked++;
        ledger.lost += found.lost;
        ledger.late += found.late;
        if (found.lost > 0) ledger.hubsWithLoss++;
        ledger.backMs.push(Date.now() - ended.at);
      }
      hub.ended = null;
    }
    this.resend(hub, welcomeS + 1);
    hub.phase = 'running';
    if (!hub.announced) {
      hub.announced = true;
      const j = Array.from({ length: this.opts.devices }, (_, dev) => ({ d: deviceId(dev), k: 'sensor.counter' }));
      void hub.client.devices({ f: true, j });
      hub.pending.push({ seq: hub.client.seq, dev: -1, n: 0, at: performance.now() });
    }
  }

  /** Sends again the hub's unacknowledged frames from sequence number `from` on, and notes their values' sends. */
  private resend(hub: ChaosHub, from: number): void {
    if (hub.client.resendUnacked(from) === 0) return;
    for (const p of hub.pending) if (p.seq >= from && p.dev >= 0) this.order.resent(deviceKey(hub.id, deviceId(p.dev)), p.n);
  }

  /** The hub's shadow checked against what it saw acknowledged, read through a node other than its own when there is one. */
  private verify(hub: ChaosHub): ReturnType<typeof verifyShadow> {
    return verifyShadow(hub, () => readCounters(hub, () => this.pickNode(hub.node), (node) => this.admin(node)));
  }

  /** The admin API of a node: one connection per request, so a failure belongs to that process. */
  private admin(node: ChaosNode): AdminClient {
    return new AdminClient(node.httpUrl, this.cluster.adminToken);
  }

  private async waitFor(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const until = Date.now() + timeoutMs;
    while (!done()) {
      if (Date.now() > until) throw new Error(`chaos: timed out after ${timeoutMs} ms waiting for ${what}`);
      await sleep(50);
    }
  }
}
