import { FrameType } from '../../proto/frames.js';
import { readUint } from './msgpack-uint.js';

/**
 * Result frames read from their first bytes, before any decoding: the hub gateway hands them on
 * at once and rates the stray ones (a result for no waiting command) unread.
 */

/**
 * The command id of a result frame encoded as hubs do (`t` first, `id` second), read without
 * decoding the frame; null for any other frame or encoding (decoded in full, then rated by `admit`).
 */
export function resultIdOf(b: Uint8Array): number | null {
  if (!isResultFrame(b) || b[4] !== 0xa2 || b[5] !== 0x69 || b[6] !== 0x64) return null;
  return readUint(b, 7);
}

/**
 * A result frame as hubs encode it: a map whose first key is `t`, of value 8. Handled at once, its
 * command is answered in this turn's batch of writes; from the inbox, the command's promise would
 * settle after that batch ran, and the answer wait a loop turn. Other encodings take the inbox.
 */
export function isResultFrame(b: Uint8Array): boolean {
  return b.length > 4 && (b[0]! & 0xf0) === 0x80 && b[1] === 0xa1 && b[2] === 0x74 && b[3] === FrameType.result;
}
