import type { PushSender } from '../ports/push-queue/push-queue.js';
import { inSpan } from './active-span.js';
import { endSpan, SpanKind, tracing } from './tracing.js';

/**
 * `sender` with a `push delivery` span per attempt while tracing is on; `sender` itself when it is
 * off, so the queue's path is unchanged. The span is a child of the rule run that enqueued the
 * notification (its `tp`), else a root, and is active while the sender runs (its lines name it).
 */
export function tracedPushSender(sender: PushSender): PushSender {
  if (tracing === null) return sender;
  const t = tracing;
  return async (delivery) => {
    const span = t.start('push delivery', SpanKind.PRODUCER, delivery.notification.tp, { 'hubtier.home_id': delivery.notification.homeId, 'hubtier.push_id': delivery.id, 'hubtier.attempt': delivery.attempt });
    try {
      await inSpan(span, () => sender(delivery));
      endSpan(span);
    } catch (err) {
      // a rejection asks the queue for a retry: the span says this attempt failed
      endSpan(span, 'push_failed');
      throw err;
    }
  };
}
