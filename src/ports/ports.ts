/**
 * The infrastructure a node runs on, as ports: each is an interface with its promises written on
 * it and a contract suite in test/contract/ that every adapter passes. Only the composition root
 * (src/compose/) picks the adapters; everything else sees these interfaces.
 */
import type { TemplatedApp } from '../transport/uws.js';
import type { Logger } from '../log/logger.js';
import type { AdminTokens } from '../auth/admin-tokens.js';
import type { GuessWatch } from '../auth/guess-limit.js';
import type { AuditLog } from './audit/audit.js';
import type { Bus, BusLink } from './bus/bus.js';
import type { Directory } from './directory/directory.js';
import type { HubRegistry, NonceStore } from './hub-registry/hub-registry.js';
import type { EventHistory } from './history/history.js';
import type { Lease } from './lease/lease.js';
import type { PendingRuns } from './pending-runs/pending-runs.js';
import type { PushQueue } from './push-queue/push-queue.js';
import type { RevocationStore } from './revocations/revocations.js';
import type { RuleStore } from './rule-store/rule-store.js';
import type { SecretRecord } from './secret-record/secret-record.js';
import type { ShadowStore } from './shadow-store/shadow-store.js';

export interface Ports {
  bus: Bus;
  /** the bus's connection to its server, when it can lose it (NATS): fleet notices are held and re-checked over it */
  link?: BusLink;
  directory: Directory;
  shadows: ShadowStore;
  registry: HubRegistry;
  nonces: NonceStore;
  /** automation rules, scenes, settings and cron cursors (a cluster must share one) */
  rules: RuleStore;
  /** once-per-instant claims of cron firings (a cluster must share one) */
  lease: Lease;
  /** push notifications of rule actions */
  push: PushQueue;
  /** every home's events with their positions, for apps that reconnect; absent: no history (events carry no position) */
  history?: EventHistory;
  /** the rest of rule runs parked in a delay; absent, delays live in the node's memory and a restart forgets them */
  pendingRuns?: PendingRuns;
  /** user token revocations, for nodes that start later; absent, only the bus carries them (a restart forgets) */
  revocations?: RevocationStore;
  /** the audit trail of control actions (a cluster must share one); absent, entries are only published on the bus */
  audit?: AuditLog;
  /** digests of the secrets the nodes must share (a cluster's); absent in the embedded default, which has one node */
  secretRecord?: SecretRecord;
  /** ms the oldest write to this node's own store (the embedded default) has waited for the disk; absent: no store of its own */
  writesWaitingMs?(): number;
  /** the backends' state, read on every `/readyz` and scrape (synchronous, no I/O); absent: nothing to report */
  health?(): PortsHealth;
  /** what self-diagnosis (`/debug/diagnose`) may ask the shared backends; absent in the embedded default */
  diagnose?: DiagnoseProbes;
  /** pages the adapters serve on the admin port (the BullMQ dashboard of a Redis push queue) */
  adminPages?: readonly AdminPage[];
  /** closes every port (when they share connections); otherwise each port is closed on its own */
  close?(): Promise<void>;
}

/** Mounts an adapter's page on the admin port, behind the admin token. */
export type AdminPage = (admin: TemplatedApp, context: { adminToken: AdminTokens; guesses?: GuessWatch; log: Logger; maxBodyBytes: number }) => void;

/**
 * The backends' state. Readiness answers for this node alone: a shared backend's outage (NATS,
 * Redis) is reported (`backends`, the readiness body, `tier_backend_up`), never a reason to take
 * the node out of service, since every node would go at once; only `local: false` (a store of this
 * node's own that fails) makes it not ready.
 */
export interface PortsHealth {
  /** @default true: false when a store private to this node fails (not a shared backend) */
  local?: boolean;
  /** each shared backend this node uses, by name ('nats', 'redis'): true while reachable */
  backends: Record<string, boolean>;
  /** the adapters' own figures (connection states, writes waiting), shown as they are */
  detail: Record<string, unknown>;
}

/**
 * Read-only questions self-diagnosis asks the backends. Any of them may reject or never settle
 * (a hung backend): the caller bounds each with a timeout and reports it as failed.
 */
export interface DiagnoseProbes {
  /** one round trip to the NATS server (ms); rejects while disconnected */
  natsRtt?(): Promise<number>;
  redis?: RedisProbe;
  /**
   * What delivers push notifications (compose/push-sender.ts): the webhook, or `delivers: false`
   * when notifications are only logged. Absent: reported as the log (a warning).
   */
  pushSender?: { name: string; delivers: boolean; missing?: readonly string[] };
  /** cluster mode: every live node and the release it runs (src/ports/directory/node-releases-redis.ts) */
  releases?(): Promise<NodeRelease[]>;
}

/** A live node and the release it runs; null for a node that says none (an older release). */
export interface NodeRelease {
  node: string;
  release: string | null;
}

/** The Redis questions of self-diagnosis, asked on the node's control connection: reads, and one write of a key of its own (`writeRefusal`). */
export interface RedisProbe {
  /** PING round trip (ms) */
  ping(): Promise<number>;
  /** the server clock (`TIME`, ms since the epoch) and the local clock at the middle of the round trip */
  time(): Promise<{ serverMs: number; localMs: number; rttMs: number }>;
  /** `CONFIG GET name`; undefined where CONFIG is refused (managed Redis renames or disables it) */
  config(name: string): Promise<string | undefined>;
  /** `INFO section` as field → value */
  info(section: string): Promise<Record<string, string>>;
  /** one short-lived key written (expires in 2 s): null when Redis took it, else its refusal (`OOM …`, `MISCONF …`, `READONLY …`) */
  writeRefusal(): Promise<string | null>;
  /** the services' event stream: its length, its configured MAXLEN and its consumer groups' lag; null when it is off */
  eventStream(): Promise<{ length: number; maxLen: number; groups: Array<{ name: string; lag: number | null }> } | null>;
}

/**
 * What adapters tell about their backends, for the node's metrics. Adapters take an observer as an
 * option and call it once per call they make (a command, a pipeline, a script, a request, a
 * flushed batch), never per key; absent, nothing is measured. Observers must not throw and must
 * be cheap: they are resolved once per adapter (`redis('shadows')`), not per call.
 */
export interface BackendObserver {
  /** one observer per Redis connection role (`control`, `shadows`, `history`, `delays`, `push`) */
  redis(client: string): CallObserver;
  /** requests over the bus (NATS); publishes are not timed */
  readonly bus: BusObserver;
  /** one observer per batching store (`shadows`, `history`) */
  store(name: string): BatchObserver;
}

export interface CallObserver {
  /** one call answered (`ok`) or failed (error reply, timeout, connection lost), after `seconds` */
  done(seconds: number, ok: boolean): void;
}

export type BusRequestOutcome = 'ok' | 'no_responders' | 'timeout' | 'error';

export interface BusObserver {
  /** `no_responders` is an answer (nobody holds that hub), not a bus failure */
  request(outcome: BusRequestOutcome, seconds: number): void;
}

export interface BatchObserver {
  /** a batch of `size` writes (hubs or entries) became durable `seconds` after it was started */
  flushed(size: number, seconds: number): void;
  /** how long the oldest batch not yet durable has waited (ms), read at each scrape */
  waiting?(oldestMs: () => number): void;
}
