import { hubVerbOf } from '../../proto/subjects.js';
import { BusUnavailableError, RequestTimeoutError, type Bus, type BusListener } from '../ports/bus/bus.js';
import type { SessionView } from './session-index.js';

/** The reply address of a command handed to a session of this node without the bus. */
const LOCAL_REPLY = '_local';

/**
 * The bus as command senders use it: while the bus is down (NATS reconnecting, requests refused
 * with `BusUnavailableError`), a command for a hub this node holds is handed to its session here,
 * so hubs held by the node the request reached keep taking commands through a NATS outage. With
 * the bus up every command goes over it, as before: which session is current (a takeover on
 * another node) is the bus's to decide, not this node's index.
 */
export function withLocalCommands(bus: Bus, sessions: SessionView<BusListener>): Bus {
  return {
    publish: (subject, data) => bus.publish(subject, data),
    subscribe: (subject, subscriber, options) => bus.subscribe(subject, subscriber, options),
    flush: () => bus.flush(),
    close: () => bus.close(),
    async request(subject, data, timeoutMs) {
      try {
        return await bus.request(subject, data, timeoutMs);
      } catch (err) {
        const session = err instanceof BusUnavailableError && hubVerbOf(subject) === 'cmd' ? sessions.get(hubIdOf(subject)) : undefined;
        if (session === undefined) throw err;
        return requestHere(session, subject, data, timeoutMs);
      }
    },
  };
}

/** `hub.<hubId>.cmd`: ids have no dots (ID_PATTERN). */
function hubIdOf(subject: string): string {
  return subject.slice(subject.indexOf('.') + 1, subject.lastIndexOf('.'));
}

/** A request answered by `session` as the bus would deliver it; its answer or, after `timeoutMs`, a timeout. */
function requestHere(session: BusListener, subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const timer = setTimeout(() => {
      answered = true;
      reject(new RequestTimeoutError(subject, timeoutMs));
    }, timeoutMs);
    session.onBusMessage({
      subject,
      data,
      replyTo: LOCAL_REPLY,
      respond(reply) {
        if (answered) return false;
        answered = true;
        clearTimeout(timer);
        resolve(reply);
        return true;
      },
    });
  });
}
