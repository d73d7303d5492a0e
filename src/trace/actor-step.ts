import type { Attributes } from '@opentelemetry/api';
import type { SpanKind, Span, Tracing } from './tracing.js';

/**
 * The `actor step` span: an actor taking one message from its mailbox and handling it, child of
 * `parent` (the context the message came with) or a root. `queued`: performance.now() when the
 * message was told; the time it waited is `hubtier.mailbox_wait_us`.
 */
export function startActorStep(t: Tracing, kind: SpanKind, actor: string, message: string, parent: Span | string | undefined, queued: number | undefined, attributes: Attributes): Span {
  const waited = queued === undefined ? 0 : Math.max(0, Math.round((performance.now() - queued) * 1000));
  return t.start('actor step', kind, parent, { 'hubtier.actor': actor, 'hubtier.message': message, 'hubtier.mailbox_wait_us': waited, ...attributes });
}
