import type { Attrs } from '../../proto/frames.js';
import { subjects, type CommandRequest } from '../../proto/subjects.js';
import { NoRespondersError, RequestCutError, RequestTimeoutError, type Bus } from '../ports/bus/bus.js';
import type { DeviceShadow } from '../ports/shadow-store/shadow-store.js';
import { asTierError, CommandError, isUnreachable, TierError } from '../errors.js';
import { encodeBus } from '../protocol/codec.js';
import { endSpan, SpanKind, traceparentOf, tracing, type Span } from '../trace/tracing.js';
import { decodeCommandReply, encodeCommandRequest } from './command-wire.js';
import { clusterNow } from './cluster-clock.js';

/** What a caller (HTTP, app socket, rules) asks a device to do. */
export type CommandSpec = { set: Attrs } | { method: string; params: Record<string, unknown> };

/**
 * A command sent wherever the hub is held, as HTTP, app sockets and rules send one: `requestId` is
 * logged with its outcome there, `parent` (tracing on) is the caller's span.
 */
export type CommandSender = (hubId: string, deviceId: string, spec: CommandSpec, timeoutMs: number, requestId?: string, parent?: Span) => Promise<unknown>;

/** The bus waits this much longer than the hub's own timeout, so the session answers first. */
const BUS_MARGIN_MS = 1_000;

/** Where a caller's command round trips are counted (the node's metrics). */
export interface CommandMetrics {
  /** `outcome`: `ok` or the error code thrown to the caller; `seconds`: the whole round trip */
  commandFinished(hubId: string, outcome: string, seconds: number): void;
}

/**
 * Sends a command to whichever node holds the hub and returns the hub's result; `requestId` goes
 * with it and is logged there with the outcome. While tracing is on, the hop is a `bus request`
 * span, child of `parent` (the caller's span) or a root, whose traceparent goes with the request.
 * Throws CommandError: `hub_offline` at once when no node holds it, `command_timeout` when the hub
 * does not answer within `timeoutMs`, or the code the hub or its session answered with.
 */
export async function sendCommand(bus: Bus, hubId: string, deviceId: string, spec: CommandSpec, timeoutMs: number, metrics?: CommandMetrics, requestId?: string, parent?: Span): Promise<unknown> {
  if (!metrics && tracing === null) return roundTrip(bus, hubId, deviceId, spec, timeoutMs, requestId, undefined);
  const started = performance.now();
  const span = tracing === null ? undefined : tracing.start('bus request', SpanKind.CLIENT, parent, { 'messaging.system': 'nats', 'messaging.destination.name': subjects.hubCommand(hubId), 'hubtier.hub_id': hubId, 'hubtier.device_id': deviceId });
  try {
    const result = await roundTrip(bus, hubId, deviceId, spec, timeoutMs, requestId, span && traceparentOf(span));
    metrics?.commandFinished(hubId, 'ok', (performance.now() - started) / 1000);
    if (span) endSpan(span);
    return result;
  } catch (err) {
    const code = asTierError(err).code;
    metrics?.commandFinished(hubId, code, (performance.now() - started) / 1000);
    if (span) endSpan(span, code);
    throw err;
  }
}

async function roundTrip(bus: Bus, hubId: string, deviceId: string, spec: CommandSpec, timeoutMs: number, rid: string | undefined, tp: string | undefined): Promise<unknown> {
  const [m, p] = 'set' in spec ? ['set', spec.set] : [spec.method, spec.params];
  // the deadline goes with it: a command held up on its way (a frozen or overloaded node) is not
  // sent to the hub after its caller was told `command_timeout` (review "commands")
  const request: CommandRequest = { d: deviceId, m, p, to: timeoutMs, dl: clusterNow() + timeoutMs };
  if (rid !== undefined) request.rid = rid;
  if (tp !== undefined) request.tp = tp;
  let data: Uint8Array;
  try {
    data = await bus.request(subjects.hubCommand(hubId), encodeCommandRequest(request), timeoutMs + BUS_MARGIN_MS);
  } catch (err) {
    if (err instanceof NoRespondersError) throw new CommandError('hub_offline', `hub ${hubId} is not connected`, { cause: err });
    if (err instanceof RequestTimeoutError) throw new CommandError('command_timeout', `hub ${hubId} did not answer within ${timeoutMs} ms`, { cause: err });
    if (err instanceof RequestCutError) throw new CommandError('command_timeout', `this node stopped before hub ${hubId} answered: the command went out and may have run`, { cause: err });
    throw err instanceof TierError ? err : new CommandError(isUnreachable(err) ? 'unavailable' : 'internal', 'command failed on the bus', { cause: err });
  }
  const reply = decodeCommandReply(data);
  if (reply.ok) return reply.r;
  throw new CommandError(reply.e, reply.msg, { hubCode: reply.hub, hubTemporary: reply.tmp === true, unsent: reply.ns === true, hubMoving: reply.mv === true });
}

/**
 * Tells the session holding the hub, if any, that a device's desired state was stored: it sends the
 * delta to the hub now. Fire and forget: an offline hub gets the delta in its next welcome.
 */
export function publishDesired(bus: Bus, hubId: string, deviceId: string, device: DeviceShadow): void {
  bus.publish(subjects.hubDesired(hubId), encodeBus({ d: deviceId, desired: device.desired, v: device.desiredVersion }));
}
