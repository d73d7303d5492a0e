/**
 * The notification dedup key of a hub event's rule runs (`rule:<id>:<key>:<action index>`): unique
 * per event, and the same when the event is evaluated again after a crash (replay.ts), or made
 * again from the hub's resend of its frame after a failover, so its notifications are not sent
 * twice. The event's `src` (the hub frame it came from: the tag of its boot id's numbering and
 * `s`, event-source.ts) is all of that: a resend after a kill -9 in the ack's window was stored again at a new offset, and its
 * offset-keyed notification went out a second time (review "retries", 2026-12-07).
 *
 * An event stored before `src` existed is keyed as it was: device versions and the hub's `ts` are
 * neither unique nor kept: versions
 * start again when a device is re-paired or its hub provisioned anew, and a hub whose clock is not
 * set sends one `ts` for many events. The event's offset in its home's history is, and a replay
 * reads the event at the same offset. Not the epoch: an embedded node that did not stop cleanly
 * starts a new one, and the events it replays were evaluated (maybe notified) in the old one.
 * Its offsets go on from what the file held, so a new event may take the offset of one lost in
 * the crash: the `ts` beside the offset tells those apart.
 */
import { randomUUID } from 'node:crypto';
import type { RuleHubEvent } from './home-actor.js';

/** `offset`: the event's in its home's history; absent when not stored (no history, or its append failed). */
export function eventDedupKey(event: RuleHubEvent, offset: number | undefined): string {
  const source = event.kind === 'state' ? `${event.hub}:${event.device}` : `${event.hub}:${event.device}:${event.event}`;
  if (event.src !== undefined) return `${source}:f${event.src}`;
  // not stored, so never replayed: nothing to reproduce, only to keep apart from every other event
  return offset === undefined ? `${source}:u${randomUUID()}` : `${source}:o${offset}:${event.ts}`;
}
