import { expect, it } from 'vitest';
import { bounded, DETAIL_MAX } from '../../src/ports/audit/audit.js';

it('an entry’s strings are cut at 256 characters, never through an emoji (half of one read back as U+FFFD or a lone surrogate: review "unicode")', () => {
  const e = bounded({ id: 'a1', at: 1, actor: { kind: 'user', sub: 'u'.repeat(DETAIL_MAX - 1) + '🚪🚪' }, from: { node: 'n' }, action: 'command', outcome: 'ok', detail: 'd'.repeat(DETAIL_MAX - 2) + '🚪🚪' });
  expect(e.actor.sub).toBe('u'.repeat(DETAIL_MAX - 1));
  expect(e.detail).toBe('d'.repeat(DETAIL_MAX - 2) + '🚪');
  expect(bounded({ ...e, target: 't'.repeat(300) }).target).toHaveLength(DETAIL_MAX);
});
