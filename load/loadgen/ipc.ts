/**
 * What the load tool (and the benchmarks) tell their worker processes over the IPC channel, and
 * what the workers answer. One worker holds at most ~19,000 sockets (the per-process file limit
 * here is 20,000); the parent splits hubs and app subscribers between workers so that every
 * home's hubs and its subscribers live in the same worker.
 */

export interface HubSpec {
  id: string;
  home: string;
  /** index into `targets` */
  target: number;
  /** known secret; absent: provisioned by the worker (`provision`), or none (unsigned) */
  secret?: string;
}

export interface AppSpec {
  /** homes this subscriber follows */
  homes: string[];
  target: number;
}

export interface WorkerConfig {
  /** `ws://host:port` bases of the nodes; HTTP goes to the same host over http(s) */
  targets: string[];
  hubs: HubSpec[];
  /** sub-devices per hub */
  devices: number;
  /** local addresses to spread connections over ([]: the system's choice) */
  sourceAddresses: string[];
  /**
   * With source addresses: this worker binds explicit ports below the kernel's ephemeral range,
   * slice `index` of `count` equal slices (workers sharing an address take different slices)
   */
  portSlice?: { index: number; count: number };
  connectConcurrency: number;
  connectTimeoutMs: number;
  /** admin token: provisioning, app tokens, HTTP commands */
  adminToken: string | null;
  /** false: no handshake signature (the relay floor) */
  signed: boolean;
  /** after each welcome: the full device list and every device's state (fills the shadow) */
  fill: boolean;
  /**
   * ids of the devices the fill lists: `dev-0`… in every hub (the default; what the traffic and
   * commands name), or `per-hub`: `<hubId>-<j>`, distinct in every hub as a real fleet's device
   * addresses are (bench:memory)
   */
  deviceIds?: 'shared' | 'per-hub';
  /** reconnect sessions that drop during steady load (full-jitter backoff from 1 s) */
  reconnect: boolean;
  apps: AppSpec[];
  /** hub path, `/hub/v1`; `/idle` with `hello: false` for the bare-socket floor */
  path?: string;
  hello?: boolean;
}

export type ToWorker =
  | { rid: number; type: 'init'; config: WorkerConfig }
  | { rid: number; type: 'provision' }
  /** connects every hub not connected; `perSec`: at most that many new connections a second (the ramp) */
  | { rid: number; type: 'connect'; perSec?: number }
  | { rid: number; type: 'apps' }
  /** every hub reports every `everyMs` (spread evenly); 0 stops */
  | { rid: number; type: 'reports'; everyMs: number }
  /** HTTP commands per second over this worker's hubs; 0 stops */
  | { rid: number; type: 'commands'; perSec: number }
  /** stops reports and commands, waits up to `waitMs` for what is in flight, counts what is still open (answers `Drained`) */
  | { rid: number; type: 'drain'; waitMs: number }
  /** every hub drops its TCP connection at once and reconnects at once */
  | { rid: number; type: 'storm'; deadlineMs: number }
  /** forgets these latencies so far (the counters and the other latencies go on); absent: every one */
  | { rid: number; type: 'reset'; latencies?: Latency[] }
  | { rid: number; type: 'snapshot' }
  /** the worker's memory after a full collection (with --expose-gc); also answered before `init` */
  | { rid: number; type: 'memory' }
  | { rid: number; type: 'stop' };

export interface Counters {
  hubs: number;
  connected: number;
  apps: number;
  reportsSent: number;
  /** reports due for a hub that was not connected: not sent */
  reportsSkipped: number;
  acks: number;
  /** reports acknowledged (a hub's fill is stored once its report's is) */
  reportAcks: number;
  /** reports of connected hubs still unacknowledged when the run's drain ended (`report:unacknowledged`) */
  reportsUnacknowledged: number;
  eventsReceived: number;
  /** steady reports received by an app following their home, once per app */
  reportsDelivered: number;
  /** steady reports an app following their home had not received when the drain ended, once per app (`report:undelivered`) */
  reportsUndelivered: number;
  commandsSent: number;
  commandsOk: number;
  commandsFailed: number;
  /** commands still unanswered when the run's drain ended (`command:unanswered`) */
  commandsUnanswered: number;
  /** commands due for a hub that was not connected: not sent */
  commandsSkipped: number;
  /** commands the hubs of this worker answered (whoever sent them) */
  commandsAnswered: number;
  connects: number;
  connectFailures: number;
  disconnects: number;
  /** `connect:<code>`, `frame:<code>`, `command:<code>`, `close:<code>`, `app:<code>` → count */
  errors: Record<string, number>;
}

/**
 * The latencies a worker records, each an HDR histogram. Commands and reports are timed from when
 * they were due, not when a busy worker got to send them. `reportToAck`: a report → the ack
 * covering it, every report (an older one than a hub's 4 newest unacknowledged, from the oldest of
 * those). What a run's drain left open is recorded at its age then. `loopDelay`: how late the
 * worker's own 100 ms timer fired, so a run can tell a slow node from a load worker too busy to
 * read its answers.
 */
export const LATENCIES = ['connect', 'command', 'reportToApp', 'reportToAck', 'loopDelay'] as const;
export type Latency = (typeof LATENCIES)[number];
/**
 * The latencies the report gives for the steady phase alone: those recorded before it (the first
 * reports of hubs still connecting, waiting behind the others' handshakes) are reported apart.
 */
export const STEADY_LATENCIES: Latency[] = ['command', 'reportToApp', 'reportToAck', 'loopDelay'];

/** Each encoded (`encodeHistogram`), null when nothing was recorded. */
export type Histograms = Record<Latency, string | null>;

export interface StormResult {
  hubs: number;
  back: number;
  /** ms from the drop until the last hub was welcomed again (or the deadline) */
  allBackMs: number;
  attempts: number;
}

export type FromWorker =
  | { type: 'tick'; counters: Counters; interval: Histograms }
  | { type: 'reply'; rid: number; ok: true; data?: unknown }
  | { type: 'reply'; rid: number; ok: false; error: string };

export interface ConnectResult {
  ok: number;
  failed: number;
  elapsedMs: number;
}

/** A worker's `process.memoryUsage()`, bytes; `collected`: read after a full collection. */
export interface WorkerMemory {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  collected: boolean;
}

export interface Snapshot {
  counters: Counters;
  total: Histograms;
}

export function emptyCounters(): Counters {
  return {
    hubs: 0,
    connected: 0,
    apps: 0,
    reportsSent: 0,
    reportsSkipped: 0,
    acks: 0,
    reportAcks: 0,
    reportsUnacknowledged: 0,
    eventsReceived: 0,
    reportsDelivered: 0,
    reportsUndelivered: 0,
    commandsSent: 0,
    commandsOk: 0,
    commandsFailed: 0,
    commandsUnanswered: 0,
    commandsSkipped: 0,
    commandsAnswered: 0,
    connects: 0,
    connectFailures: 0,
    disconnects: 0,
    errors: {},
  };
}

export function addCounters(into: Counters, c: Counters): Counters {
  for (const k of Object.keys(c) as Array<keyof Counters>) {
    if (k === 'errors') continue;
    into[k] += c[k];
  }
  for (const [code, n] of Object.entries(c.errors)) into.errors[code] = (into.errors[code] ?? 0) + n;
  return into;
}
