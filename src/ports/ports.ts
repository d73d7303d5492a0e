/**
 * The infrastructure a node runs on, as ports: each is an interface with its promises written on
 * it and a contract suite in test/contract/ that every adapter passes. Only the composition root
 * (src/compose/) picks the adapters; everything else sees these interfaces.
 */
import type { TemplatedApp } from '../transport/uws.js';
import type { Logger } from '../log/logger.js';
import type { Bus } from './bus/bus.js';
import type { Directory } from './directory/directory.js';
import type { HubRegistry, NonceStore } from './hub-registry/hub-registry.js';
import type { EventHistory } from './history/history.js';
import type { Lease } from './lease/lease.js';
import type { PendingRuns } from './pending-runs/pending-runs.js';
import type { PushQueue } from './push-queue/push-queue.js';
import type { RevocationStore } from './revocations/revocations.js';
import type { RuleStore } from './rule-store/rule-store.js';
import type { ShadowStore } from './shadow-store/shadow-store.js';

export interface Ports {
  bus: Bus;
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
  /** the backends' state for readiness: `ok: false` marks the node degraded (not ready) */
  health?(): { ok: boolean; detail: Record<string, unknown> };
  /** pages the adapters serve on the admin port (the BullMQ dashboard of a Redis push queue) */
  adminPages?: readonly AdminPage[];
  /** closes every port (when they share connections); otherwise each port is closed on its own */
  close?(): Promise<void>;
}

/** Mounts an adapter's page on the admin port, behind the admin token. */
export type AdminPage = (admin: TemplatedApp, context: { adminToken: string; log: Logger; maxBodyBytes: number }) => void;

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
}
