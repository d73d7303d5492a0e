/** The node's Prometheus metrics. Over 400 lines: one registry of the node's series, each a few lines; split by area it would be many files declaring into one registry. */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { APP_NODE_OPS, APP_REQUEST_OPS } from '../../proto/app.js';
import { CloseCode } from '../../proto/errors.js';
import { FrameType } from '../../proto/frames.js';
import type { HubSessionMetrics } from '../actors/hub-session.js';
import type { CommandMetrics } from '../actors/commands.js';
import type { BackendObserver, BatchObserver, BusObserver, BusRequestOutcome, CallObserver } from '../ports/ports.js';
import type { PushQueueStats } from '../ports/push-queue/push-queue.js';
import type { AppGatewayMetrics } from '../transport/app-gateway.js';
import type { HubGatewayMetrics } from '../transport/hub-gateway.js';
import type { HttpMetrics, HttpObserver } from '../transport/http.js';
import type { AdmissionRefusals } from '../transport/upgrade-limits.js';
import { registerMemoryMetrics, type MemorySources } from './memory-metrics.js';
import { registerDiskMetrics, type DataDisk } from './disk-metrics.js';
import { registerNodeDefaults, type LoopDelaySampler } from './default-metrics.js';
import { Tally, type TallyConfig } from './tally.js';

const FRAME_NAMES: Record<number, string> = Object.fromEntries(Object.entries(FrameType).map(([name, code]) => [code, name]));
/** frame types are small integers; one more slot collects anything else as `other` */
const FRAME_SLOTS = 32;
const FRAME_LABELS = Array.from({ length: FRAME_SLOTS }, (_, t) => FRAME_NAMES[t] ?? 'other');
/** A frame type's slot in the tallies: codes without one count as `other` (slot 0). */
const frameSlot = (type: number): number => (Number.isInteger(type) && type > 0 && type < FRAME_SLOTS ? type : 0);

/**
 * The allowed label names of every `tier_*` and default series: each takes a small, fixed set of
 * values (never a hub, home, device, rule or user id). A unit test holds the registry to this list.
 */
export const BOUNDED_LABELS: ReadonlySet<string> = new Set([
  // ours
  'type', 'outcome', 'code', 'reason', 'message', 'package', 'native', 'kind', 'path', 'result',
  'method', 'route', 'status', 'client', 'store', 'state', 'release' /* one a process */,
  // prom-client's defaults
  'space', 'version', 'major', 'minor', 'patch',
]);

/** Close codes counted one by one: the protocol's, and uWS's for no status and a lost connection; a hub may send any of about a thousand others. */
const CLOSE_CODES: ReadonlySet<string> = new Set([...Object.values(CloseCode), 1005, 1006].map(String));

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const BACKEND_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5];
const BATCH_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500];

/** What the node's metrics read when scraped (plain numbers, nothing counted on the hot paths). */
export interface NodeSources extends MemorySources {
  /** the hubs this node holds: a command to one of them takes the local path */
  hubs?: { has(hubId: string): boolean };
  /** handshakes refused by the admission limits, totals since start */
  admission?: AdmissionRefusals;
  /** the push queue (depth and delivery totals); a failing read keeps the last values */
  push?: { stats(): Promise<PushQueueStats> };
  /** true once the node started draining */
  draining?: () => boolean;
  /** hub sessions whose device cache is unpacked (in use lately; TIER_SHADOW_PACK_MS) */
  unpackedCaches?: () => number;
  /** events the history did not take, totals since start (EventPublisher) */
  events?: { readonly historyFailures: number; readonly staleEvents: number };
  /** this node's clock minus Redis's (seconds; cluster mode, where Redis's clock decides cron instants) */
  clockSkew?: () => Promise<number>;
  /** the embedded default's DATA_DIR on disk (not in cluster mode, nor in memory) */
  dataDisk?: DataDisk;
  /** another live process refreshes this node id's liveness too (cluster mode, the directory) */
  nodeIdShared?: () => boolean;
  /** Redis was found without the data this node started with (cluster mode, redis-data-watch.ts) */
  recordsLost?: () => boolean;
}

/**
 * The node's Prometheus metrics (served on the admin port at /metrics). Label values come from
 * fixed sets (frame types, error codes, route templates, connection roles): see BOUNDED_LABELS.
 * Per-frame and per-command series are bound to their labels once; gauges are read at scrape time.
 */
export class NodeMetrics implements HubSessionMetrics, HubGatewayMetrics, AppGatewayMetrics, HttpMetrics, CommandMetrics, BackendObserver {
  readonly registry = new Registry();
  private readonly registers = [this.registry];
  private sources: NodeSources = {};

  // ---- hub sessions -------------------------------------------------------------------------------
  /** by frame type's code (FRAME_SLOTS of them, `other` for codes without a name) */
  private readonly framesIn = new Tally({ name: 'tier_hub_frames_in_total', help: 'Hub frames accepted by type', labelName: 'type', values: FRAME_LABELS, registers: this.registers });
  private readonly framesOut = new Tally({ name: 'tier_hub_frames_out_total', help: 'Frames sent to hubs by type', labelName: 'type', values: FRAME_LABELS, registers: this.registers });
  private readonly commands = new Counter({ name: 'tier_commands_total', help: 'Commands finished by the session holding the hub, by outcome', labelNames: ['outcome'], registers: this.registers });
  private readonly closed = new Counter({ name: 'tier_hub_sessions_closed_total', help: 'Hub sessions closed by close code', labelNames: ['code'], registers: this.registers });
  private readonly connects = new Counter({ name: 'tier_hub_connects_total', help: 'Hub handshakes by result (accepted, refused)', labelNames: ['result'], registers: this.registers });
  private readonly refused = new Counter({ name: 'tier_hub_upgrades_refused_total', help: 'Hub upgrades refused by error code', labelNames: ['code'], registers: this.registers });
  private readonly badFrames = new Counter({ name: 'tier_hub_bad_frames_total', help: 'Hub frames rejected by error code', labelNames: ['code'], registers: this.registers });
  private readonly strayResults = new Counter({ name: 'tier_hub_stray_results_total', help: 'Results for no command the session waits for (late answers to timed-out commands, or a flood): ignored within the rate budget, refused past it', labelNames: ['outcome'], registers: this.registers });
  readonly actorFailures = new Counter({ name: 'tier_actor_failures_total', help: 'Actor messages that threw', labelNames: ['message'], registers: this.registers });
  readonly adminRefused = new Counter({ name: 'tier_admin_refused_total', help: 'Requests refused before their route: host, an admin port request naming a Host not in ADMIN_ALLOWED_HOSTS; token, a wrong admin token (either port; a bearer not shaped as a JWT on the public one); locked, an address past its wrong tokens, refused unchecked', labelNames: ['reason'], registers: this.registers });
  readonly acceptedSecret = new Counter({ name: 'tier_auth_accepted_secret_total', help: 'Requests and upgrades authenticated by JWT_SECRETS_ACCEPTED or ADMIN_TOKENS_ACCEPTED rather than JWT_SECRET or ADMIN_TOKEN (kind: jwt, admin); once it stops growing after a rotation, the old value can go', labelNames: ['kind'], registers: this.registers });
  readonly binding = new Gauge({ name: 'tier_uws_binding_info', help: 'uWebSockets.js build in use (1)', labelNames: ['package', 'native'], registers: this.registers });
  private readonly trims = new Counter({ name: 'tier_malloc_trims_total', help: "glibc malloc_trim calls, made once the resident size grew (TIER_MALLOC_TRIM_MS)", registers: this.registers });
  private readonly trimSeconds = new Counter({ name: 'tier_malloc_trim_seconds_total', help: 'Time spent in malloc_trim', registers: this.registers });
  private readonly trimReturned = new Counter({ name: 'tier_malloc_trim_returned_bytes_total', help: 'Resident bytes the malloc_trim calls gave back (before less after)', registers: this.registers });

  // ---- commands as their callers see them (HTTP, app sockets, rules) ------------------------------
  private readonly commandSeconds = new Histogram({ name: 'tier_command_duration_seconds', help: 'Command round trip from the caller, by outcome (ok or error code) and path (local: the hub is on this node; remote: on another)', labelNames: ['path', 'outcome'], buckets: LATENCY_BUCKETS, registers: this.registers });

  // ---- app sockets --------------------------------------------------------------------------------
  private readonly appClosedBackpressure = new Counter({ name: 'tier_app_backpressure_closes_total', help: 'Subscribed app sockets dropped without a close frame (1006): the backpressure-limit close of a socket that does not read, or a client gone without closing', registers: this.registers });
  private readonly appOpened = new Counter({ name: 'tier_app_connects_total', help: 'App sockets opened', registers: this.registers });
  private readonly busReconnects = new Counter({ name: 'tier_bus_reconnects_total', help: 'Reconnects of the node to NATS: what was published while it was away never reached it (its app feeds read it back from the history); an outage of a second leaves tier_backend_up 1 at every scrape', registers: this.registers });
  private readonly appUpgradesRefused = new Counter({ name: 'tier_app_upgrades_refused_total', help: 'App upgrades refused by the socket limits: busy (TIER_MAX_APP_SOCKETS on the node), limit_exceeded (TIER_MAX_APP_SOCKETS_PER_USER)', labelNames: ['code'], registers: this.registers });
  /** by op, `unknown` for anything else: the label set stays the protocol's */
  private readonly appIn = opTally({ name: 'tier_app_frames_in_total', help: 'App socket requests by op (sub, unsub, cmd, ping; unknown: refused undecoded, an unknown op among them)', registers: this.registers }, APP_REQUEST_OPS);
  private readonly appOut = opTally({ name: 'tier_app_frames_out_total', help: 'Messages sent to app sockets by op (ok, err, evt, reload); an event published to a home counts once per subscribed socket', registers: this.registers }, APP_NODE_OPS);
  private subscriptions = 0;
  private appOpen = 0;

  // ---- HTTP API -----------------------------------------------------------------------------------
  private readonly httpRequests = new Counter({ name: 'tier_http_requests_total', help: 'API requests by method, route template and status', labelNames: ['method', 'route', 'status'], registers: this.registers });
  private readonly httpSeconds = new Histogram({
    name: 'tier_http_request_duration_seconds',
    help: 'API request handling time by method and route template (to the answer being written)',
    labelNames: ['method', 'route'],
    buckets: LATENCY_BUCKETS,
    registers: this.registers,
  });

  // ---- backends -----------------------------------------------------------------------------------
  private readonly busSeconds = new Histogram({ name: 'tier_bus_request_duration_seconds', help: 'Bus (NATS) request round trips by outcome', labelNames: ['outcome'], buckets: LATENCY_BUCKETS, registers: this.registers });
  private readonly busErrors = new Counter({ name: 'tier_bus_request_errors_total', help: 'Bus requests that failed (timeout, error; no_responders is an answer, not counted)', labelNames: ['outcome'], registers: this.registers });
  private readonly redisSeconds = new Histogram({ name: 'tier_redis_call_duration_seconds', help: 'Redis calls of the adapters (a command, pipeline or script) by connection role', labelNames: ['client'], buckets: BACKEND_BUCKETS, registers: this.registers });
  private readonly redisErrors = new Counter({ name: 'tier_redis_errors_total', help: 'Redis calls that failed (error reply, timeout, connection lost) by connection role', labelNames: ['client'], registers: this.registers });
  private readonly batchSize = new Histogram({ name: 'tier_store_batch_size', help: 'Writes per flushed batch (hubs for shadows, entries for history) by store', labelNames: ['store'], buckets: BATCH_BUCKETS, registers: this.registers });
  /** per store, how long its oldest batch not yet durable has waited (ms) */
  private readonly oldestPending = new Map<string, () => number>();
  private readonly flushSeconds = new Histogram({ name: 'tier_store_flush_duration_seconds', help: 'From a batch being started to it being durable, by store', labelNames: ['store'], buckets: BACKEND_BUCKETS, registers: this.registers });
  // a stalled disk finishes no batch: the histogram above then says nothing, this does
  readonly storePending = ((pending) =>
    new Gauge({
      name: 'tier_store_oldest_pending_seconds',
      help: 'How long the oldest batch of a store not yet durable has waited (0: none waits), by store',
      labelNames: ['store'],
      registers: this.registers,
      collect() {
        for (const [store, ms] of pending) this.set({ store }, ms() / 1000);
      },
    }))(this.oldestPending);
  // tier_backend_up (per backend, 1/0) belongs here, next to the backend series

  /** `loopDelays`: the node's event-loop sampler, fed by its LoopLag (absent: the series sample on their own) */
  constructor(sessions: () => number, release?: string, loopDelays?: LoopDelaySampler) {
    const self = this;
    const registers = this.registers;
    if (release !== undefined) new Gauge({ name: 'tier_build_info', help: 'the release this node runs (1): TIER_RELEASE, or the version and a hash of the code', labelNames: ['release'], registers }).set({ release }, 1);
    new Gauge({ name: 'tier_hub_sessions', help: 'Hub sessions held by this node', registers, collect() { this.set(sessions()); } });
    new Gauge({
      name: 'tier_sessions',
      help: 'Sessions held by this node by kind (hub, app)',
      labelNames: ['kind'],
      registers,
      collect() {
        this.set({ kind: 'hub' }, sessions());
        this.set({ kind: 'app' }, self.appOpen);
      },
    });
    new Gauge({
      name: 'tier_hub_device_caches_unpacked',
      help: 'Hub sessions whose device cache is in use (unpacked); the others hold it packed into one string',
      registers,
      collect() {
        this.set(self.sources.unpackedCaches?.() ?? sessions());
      },
    });
    new Gauge({ name: 'tier_app_subscriptions', help: 'Home subscriptions of the app sockets on this node', registers, collect() { this.set(self.subscriptions); } });
    new Counter({
      name: 'tier_hub_admission_refusals_total',
      help: 'Hub handshakes refused busy by the admission limits, by reason (full, handshakes, memory, rate, late)',
      labelNames: ['reason'],
      registers,
      collect() {
        const r = self.sources.admission;
        if (!r) return;
        // totals kept by the limits as plain numbers: nothing counted per handshake here
        this.reset();
        this.inc({ reason: 'full' }, r.full);
        this.inc({ reason: 'handshakes' }, r.handshakes);
        this.inc({ reason: 'rate' }, r.rate);
        this.inc({ reason: 'late' }, r.late);
        this.inc({ reason: 'memory' }, r.memory);
      },
    });
    new Counter({
      name: 'tier_events_not_in_history_total',
      help: 'Hub events the history did not take: published without a position (its backend away), or not published (their session was taken over)',
      labelNames: ['outcome'],
      registers,
      collect() {
        const e = self.sources.events;
        if (!e) return;
        this.reset();
        this.inc({ outcome: 'unpositioned' }, e.historyFailures);
        this.inc({ outcome: 'stale' }, e.staleEvents);
      },
    });
    registerMemoryMetrics(registers, () => self.sources);
    registerDiskMetrics(registers, () => self.sources.dataDisk);
    let skew = 0;
    new Gauge({
      name: 'tier_clock_skew_seconds',
      help: "This node's clock minus Redis's (seconds, at the middle of a TIME round trip); 0 in the embedded default",
      registers,
      async collect() {
        const read = self.sources.clockSkew;
        if (!read) return;
        try {
          skew = await read();
        } catch {
          // Redis away: the last value stays, tier_backend_up tells the outage
        }
        this.set(skew);
      },
    });
    new Gauge({ name: 'tier_node_id_shared', help: '1 while another live process refreshes this NODE_ID in the directory too (two nodes given one id), else 0', registers, collect() { this.set(self.sources.nodeIdShared?.() ? 1 : 0); } });
    new Gauge({ name: 'tier_redis_data_lost', help: "1 while Redis is found without the cluster's secrets record this node started with (it lost its data: restarted empty, flushed, replaced), else 0", registers, collect() { this.set(self.sources.recordsLost?.() ? 1 : 0); } });
    new Gauge({ name: 'tier_draining', help: '1 once this node is draining (stopping), else 0', registers, collect() { this.set(self.sources.draining?.() ? 1 : 0); } });
    new Gauge({ name: 'tier_drain_sessions_remaining', help: 'Hub sessions still open on a draining node (0 when not draining)', registers, collect() { this.set(self.sources.draining?.() ? sessions() : 0); } });
    this.pushSeries();
    registerNodeDefaults(this.registry, loopDelays);
    // both at 0 from the start: HubtierRefusalStorm compares them, and a node that never accepted one matched nothing
    for (const result of ['accepted', 'refused']) this.connects.inc({ result }, 0);
  }

  /**
   * `tier_backend_up{backend}`: 1 while this node reaches the shared backend, 0 while not, read at
   * each scrape. Readiness ignores shared backends (every pod would leave at once): alert on this.
   * Called again, `read` replaces the reader.
   */
  backendsUp(read: () => Record<string, boolean>): void {
    // called again with the running node's reader once a start-up wait for the backends is over
    const first = this.readBackends === null;
    this.readBackends = read;
    if (!first) return;
    const self = this;
    new Gauge({
      name: 'tier_backend_up',
      help: 'Shared backend reachable from this node (1) or not (0)',
      labelNames: ['backend'],
      registers: [this.registry],
      collect() {
        // a backend the reader no longer names (not tried yet while starting) has no series
        this.reset();
        for (const [backend, up] of Object.entries(self.readBackends!())) this.set({ backend }, up ? 1 : 0);
      },
    });
  }
  private readBackends: (() => Record<string, boolean>) | null = null;

  /** Sources read at scrape time that exist only after the node is wired. */
  attach(sources: NodeSources): void {
    this.sources = { ...this.sources, ...sources };
  }

  private pushSeries(): void {
    const self = this;
    let last: PushQueueStats | null = null;
    const read = async (): Promise<PushQueueStats | null> => {
      // Redis reported down or hung: each scrape waited the call's 2 s timeout for nothing
      if (self.readBackends?.().redis === false) return last;
      try {
        last = (await self.sources.push?.stats()) ?? null;
      } catch {
        // the backend is down: the last values stay, the backend series tell the outage
      }
      return last;
    };
    let reading: Promise<PushQueueStats | null> | null = null;
    // both series are collected in one scrape: one read of the queue serves both
    const once = () => {
      reading ??= read().finally(() => setImmediate(() => (reading = null)));
      return reading;
    };
    new Gauge({
      name: 'tier_push_queue_jobs',
      help: 'Push notifications in the queue by state (waiting, delayed, active)',
      labelNames: ['state'],
      registers: this.registers,
      async collect() {
        const s = await once();
        if (!s) return;
        this.set({ state: 'waiting' }, s.waiting);
        this.set({ state: 'delayed' }, s.delayed);
        this.set({ state: 'active' }, s.active);
      },
    });
    new Counter({
      name: 'tier_push_notifications_total',
      help: 'Push notifications delivered or failed (attempts used up), totals kept by the queue: with the shared Redis queue every node reports the same cluster total',
      labelNames: ['outcome'],
      registers: this.registers,
      async collect() {
        const s = await once();
        if (!s) return;
        this.reset();
        this.inc({ outcome: 'delivered' }, s.delivered);
        this.inc({ outcome: 'failed' }, s.failed);
      },
    });
  }

  // ---- hub path: pre-bound children, indexed by frame type or outcome ------------------------------
  private readonly commandCounters = new Map<string, Counter.Internal>();

  frameIn(type: number, n = 1): void {
    this.framesIn.add(frameSlot(type), n);
  }
  frameOut(type: number): void {
    this.framesOut.add(frameSlot(type));
  }
  commandDone(outcome: 'ok' | 'failed' | 'timeout' | 'closed'): void {
    let c = this.commandCounters.get(outcome);
    if (!c) {
      c = this.commands.labels(outcome);
      this.commandCounters.set(outcome, c);
    }
    c.inc();
  }
  sessionClosed(reason: string): void {
    this.closed.inc({ code: CLOSE_CODES.has(reason) ? reason : 'other' });
  }
  private readonly accepted = this.connects.labels('accepted');
  private readonly refusedConnects = this.connects.labels('refused');
  hubConnected(): void {
    this.accepted.inc();
  }
  upgradeRefused(code: string): void {
    this.refusedConnects.inc();
    this.refused.inc({ code });
  }

  /** A malloc_trim call: resident bytes before and after, its time (s). */
  mallocTrimmed(before: number, after: number, seconds: number): void {
    this.trims.inc();
    this.trimSeconds.inc(seconds);
    this.trimReturned.inc(Math.max(0, before - after));
  }

  badFrame(code: string): void {
    this.badFrames.inc({ code });
  }

  strayResult(outcome: 'ignored' | 'refused'): void {
    this.strayResults.inc({ outcome });
  }

  // ---- commands from callers -------------------------------------------------------------------------
  private readonly commandPaths = { local: new Map<string, Histogram.Internal<string>>(), remote: new Map<string, Histogram.Internal<string>>() };
  commandFinished(hubId: string, outcome: string, seconds: number): void {
    const path = this.sources.hubs?.has(hubId) ? 'local' : 'remote';
    const byOutcome = this.commandPaths[path];
    let h = byOutcome.get(outcome);
    if (!h) {
      h = this.commandSeconds.labels(path, outcome);
      byOutcome.set(outcome, h);
    }
    h.observe(seconds);
  }

  // ---- app sockets -------------------------------------------------------------------------------------
  appConnected(): void {
    this.appOpen++;
    this.appOpened.inc();
  }
  busReconnected(): void {
    this.busReconnects.inc();
  }
  appClosed(backpressure: boolean): void {
    this.appOpen--;
    if (backpressure) this.appClosedBackpressure.inc();
  }
  subscribed(delta: 1 | -1): void {
    this.subscriptions += delta;
  }
  appRefused(code: 'busy' | 'limit_exceeded'): void {
    this.appUpgradesRefused.inc({ code });
  }
  appFrameIn(op: string): void {
    this.appIn.add(op);
  }
  appFramesOut(op: string, frames: number): void {
    this.appOut.add(op, frames);
  }

  // ---- HTTP ------------------------------------------------------------------------------------------
  route(method: string, pattern: string): HttpObserver {
    const seconds = this.httpSeconds.labels(method, pattern);
    const byStatus = new Map<number, Counter.Internal>();
    return (status, s) => {
      let c = byStatus.get(status);
      if (!c) {
        c = this.httpRequests.labels(method, pattern, String(status));
        byStatus.set(status, c);
      }
      c.inc();
      seconds.observe(s);
    };
  }

  // ---- backends ----------------------------------------------------------------------------------------
  readonly bus: BusObserver = (() => {
    const outcomes: BusRequestOutcome[] = ['ok', 'no_responders', 'timeout', 'error'];
    const seconds = new Map(outcomes.map((o) => [o, this.busSeconds.labels(o)] as const));
    const timeouts = this.busErrors.labels('timeout');
    const errors = this.busErrors.labels('error');
    return {
      request(outcome: BusRequestOutcome, s: number): void {
        seconds.get(outcome)!.observe(s);
        if (outcome === 'timeout') timeouts.inc();
        else if (outcome === 'error') errors.inc();
      },
    };
  })();

  redis(client: string): CallObserver {
    const seconds = this.redisSeconds.labels(client);
    const errors = this.redisErrors.labels(client);
    return {
      done(s: number, ok: boolean): void {
        seconds.observe(s);
        if (!ok) errors.inc();
      },
    };
  }

  store(name: string): BatchObserver {
    const size = this.batchSize.labels(name);
    const seconds = this.flushSeconds.labels(name);
    return {
      flushed(n: number, s: number): void {
        size.observe(n);
        seconds.observe(s);
      },
      waiting: (oldestMs) => void this.oldestPending.set(name, oldestMs),
    };
  }
}

const UNKNOWN = 'unknown';

/** A tally by op (label `type`), `unknown` for an op not among `ops`. */
function opTally(config: Omit<TallyConfig, 'labelName' | 'values'>, ops: readonly string[]): { add(op: string, n?: number): void } {
  const values = [...ops, UNKNOWN];
  const index = new Map(values.map((op, i) => [op, i] as const));
  const tally = new Tally({ ...config, labelName: 'type', values });
  return { add: (op, n = 1) => tally.add(index.get(op) ?? values.length - 1, n) };
}
