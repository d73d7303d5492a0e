/**
 * What a hub session is given and told: the socket it speaks through, the parts of the node all
 * sessions share, and the messages of its mailbox.
 */
import type { AppEventMessage } from '../../proto/app.js';
import type { HubToServerFrame } from '../../proto/frames.js';
import type { SampledLog } from '../log/sampler.js';
import type { Bus, BusMessage } from '../ports/bus/bus.js';
import type { Directory } from '../ports/directory/directory.js';
import type { HubRegistry } from '../ports/hub-registry/hub-registry.js';
import type { ShadowStore } from '../ports/shadow-store/shadow-store.js';
import type { TierError } from '../errors.js';
import type { Span } from '../trace/tracing.js';
import type { ActorSystem } from './actor.js';
import type { HubErrorLog } from './hub-error-log.js';
import type { HubLimits } from './hub-limits.js';
import type { HubSession } from './hub-session.js';
import type { Interner } from './intern.js';
import type { AttrShapes } from './attr-shapes.js';
import type { SessionIndex } from './session-index.js';
import type { ShadowPacker } from './shadow-packer.js';

/** The socket of a hub as the actor sees it; the gateway implements it over uWS. */
export interface HubLink {
  /** Sends one binary frame; false when the socket dropped it (closed or backpressure limit). */
  send(bytes: Uint8Array): boolean;
  /** Closes the socket; the gateway then tells the actor `closed`. */
  close(code: number, reason: string): void;
  /** the peer's address, for the log */
  readonly remote?: string;
  /** true while the hub sent only hellos of a protocol version this node does not speak */
  readonly versionRefused?: boolean;
  /**
   * Asked once per idle check: true when frames wait for the hub now, waited at the last ask too,
   * and it read none of them in between (a hub whose firmware stopped reading, its heartbeats
   * still coming). Absent: never.
   */
  readingStalled?(): boolean;
}

/** What all hub sessions of a node share. */
export interface HubSessionDeps {
  readonly system: ActorSystem;
  readonly bus: Bus;
  readonly directory: Directory;
  /**
   * read once a session has subscribed, before it goes online: an operator's order (delete, move,
   * disable) given while the hub was connecting reached no one. Absent: not read
   */
  readonly registry?: Pick<HubRegistry, 'placements'>;
  readonly shadows: ShadowStore;
  readonly nodeId: string;
  readonly heartbeatMs: number;
  readonly idleMs: number;
  readonly helloTimeoutMs: number;
  /** the node drains: a handshake that ends now is told to reconnect elsewhere, not welcomed */
  readonly draining?: () => boolean;
  readonly maxFrameBytes: number;
  readonly ratePerSec: number;
  readonly rateBurst: number;
  /** bounds on what one hub may make the node hold (devices, attributes, bytes, commands) */
  readonly limits?: HubLimits;
  /**
   * publishes an event in the shape apps receive it (see AppEventMessage); `parent` (tracing on):
   * the session's step the event came from, which the rules' evaluation of it joins
   */
  readonly publishEvent: (event: AppEventMessage, epoch: number, parent?: Span) => void;
  /**
   * resolves once the home's events published so far are stored (EventPublisher.durable): a device
   * event is acknowledged only then, since the shadow does not hold it. Absent: at once
   */
  readonly eventsDurable?: (homeId: string) => Promise<void>;
  /**
   * a report's state is written to the shadow store only once `eventsDurable` resolves (cluster
   * mode: the store is shared, and a write queued on Redis lands even if this node dies before its
   * event is published); else at once, beside the event
   */
  readonly stateAfterEvents?: boolean;
  /** whether this node's rules may trigger on `event`; asked only while tracing is on, to trace the step that published it */
  readonly rulesListen?: (event: AppEventMessage) => boolean;
  /** the node's index of live sessions: a session claims its hub there when online, releases it when closed */
  readonly sessions: SessionIndex<HubSession>;
  readonly metrics?: HubSessionMetrics;
  /** node-wide copies of strings every hub repeats (attribute values such as "closed") */
  readonly interner?: Interner;
  /** node-wide numbers of attribute key lists, which packed device caches name instead of the keys */
  readonly shapes?: AttrShapes;
  /** packs the device caches of sessions idle for a while (none: caches stay unpacked) */
  readonly packer?: ShadowPacker;
  /** told the firmware version of each session's hello (`fw`), to keep it in the registry; must not throw */
  readonly noteFirmware?: (hubId: string, firmware: string) => void;
  /** node-wide log of sessions that could not open (a backend away fails them all): sampled */
  readonly openFailures?: SampledLog;
  /** node-wide log of the error frames hubs send: sampled per hub, their `msg` cut short */
  readonly hubErrors: HubErrorLog;
}

export interface HubSessionMetrics {
  /** `n` frames of this type came in (a full mailbox folds several into one message) */
  frameIn(type: number, n?: number): void;
  frameOut(type: number): void;
  commandDone(outcome: 'ok' | 'failed' | 'timeout' | 'closed'): void;
  sessionClosed(reason: string): void;
}

export type SessionState = 'connecting' | 'online' | 'draining' | 'closed';

/** `queued` (frames and commands, only while tracing is on): performance.now() when told, for the actor step's mailbox wait */
export type HubMessage =
  /**
   * `from`: first sequence number of a report that absorbed later ones while the mailbox was full;
   * `beats`: the heartbeats a heartbeat stands for, when a full mailbox folded later ones into it (absent: 1);
   * `seqs`: of such a report, the `s` of the last frame that carried each device (its event's `src`)
   */
  | { type: 'frame'; frame: HubToServerFrame; from?: number; beats?: number; queued?: number; seqs?: Record<string, number> }
  /** a frame the gateway could not accept (validation): consumed in sequence, or failing its command */
  | { type: 'refused'; error: TierError; seq?: number; commandId?: number }
  | { type: 'command'; request: BusMessage; queued?: number }
  | { type: 'desired'; data: Uint8Array }
  /** desired changes a full mailbox could not queue: the hub's stored desired state is read and sent (one shared message) */
  | { type: 'desiredPending' }
  /** the node is back on the bus: desired changes published meanwhile are read back as above, a failed read said, not closing (one shared message) */
  | { type: 'desiredRecheck' }
  | { type: 'takeover'; data: Uint8Array }
  /** the operator disabled, deleted or moved the hub (`hub.<id>.close`) */
  | { type: 'closeOrder'; data: Uint8Array }
  /** a newer session of this hub on this node went online */
  | { type: 'superseded' }
  | { type: 'timer'; tag: number }
  | { type: 'closed'; code: number };
