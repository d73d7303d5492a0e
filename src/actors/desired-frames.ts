import { FrameType, type Attrs, type AttrValue, type WelcomeFrame } from '../../proto/frames.js';
import { encode, LIMITS } from '../protocol/codec.js';

/**
 * A hub's desired delta cut into frames the protocol allows (PROTOCOL.md §1 Limits, §6): however
 * much is stored, no frame to the hub holds more than 256 devices, 64 attributes of a device or
 * `max` bytes. The welcome carries what fits; the rest goes as `set` commands, the frame that takes
 * a desired change to an online hub, so a hub of any version applies it as it applies those.
 */

/** Part of a delta the welcome could not carry: one device's attributes, for `set` commands. */
export interface DesiredSet {
  d: string;
  p: Attrs;
}

/**
 * The welcome with as much of `delta` as fits (whole devices, at most 256, the frame within
 * `maxBytes`) and the devices left for `set` commands, in the delta's order.
 */
export function welcomeFrames(head: Omit<WelcomeFrame, 'dl'>, delta: Record<string, Attrs>, maxBytes: number): { welcome: WelcomeFrame; rest: DesiredSet[] } {
  const dl = Object.create(null) as Record<string, Attrs>;
  const rest: DesiredSet[] = [];
  let room = maxBytes - framedBytes({ ...head, dl: {} });
  let devices = 0;
  for (const id in delta) {
    const attrs = delta[id]!;
    const size = stringBytes(id) + mapBytes(attrs);
    if (devices < LIMITS.devicesPerFrame && Object.keys(attrs).length <= LIMITS.attrsPerDevice && size <= room) {
      dl[id] = attrs;
      room -= size;
      devices++;
    } else rest.push({ d: id, p: attrs });
  }
  return { welcome: { ...head, dl }, rest };
}

/**
 * One device's attributes cut into `set` parameters that each keep a command frame within
 * `maxBytes` and 64 attributes. `dropped`: attributes too large for any frame alone (only when the
 * operator set `max` below what one attribute of the longest name and value needs, about 3.3 KB).
 */
export function setChunks(deviceId: string, attrs: Attrs, maxBytes: number, timeoutMs: number): { chunks: Attrs[]; dropped: string[] } {
  const budget = maxBytes - framedBytes({ t: FrameType.command, id: 0x7fffffff, d: deviceId, m: 'set', p: {}, to: timeoutMs });
  const chunks: Attrs[] = [];
  const dropped: string[] = [];
  let chunk: Attrs = {};
  let keys = 0;
  let room = budget;
  for (const key in attrs) {
    const size = stringBytes(key) + valueBytes(attrs[key]!);
    if (size > budget) {
      dropped.push(key);
      continue;
    }
    if (keys === LIMITS.attrsPerDevice || size > room) {
      chunks.push(chunk);
      chunk = {};
      keys = 0;
      room = budget;
    }
    chunk[key] = attrs[key]!;
    keys++;
    room -= size;
  }
  if (keys > 0) chunks.push(chunk);
  return { chunks, dropped };
}

/** Bytes of a frame whose one empty map (`dl` or `p`) is to be filled: its header may grow to 3 bytes. */
function framedBytes(frame: Parameters<typeof encode>[0]): number {
  return encode(frame).length + 2;
}

/** At most the msgpack bytes of an attribute map (its header at most 3 bytes: ≤ 65,535 keys). */
function mapBytes(attrs: Attrs): number {
  let n = 3;
  for (const key in attrs) n += stringBytes(key) + valueBytes(attrs[key]!);
  return n;
}

/** At most the msgpack bytes of a value: a number at most 9 (float64 or uint64). */
function valueBytes(v: AttrValue): number {
  return typeof v === 'string' ? stringBytes(v) : typeof v === 'number' ? 9 : 1;
}

function stringBytes(s: string): number {
  const n = Buffer.byteLength(s, 'utf8');
  return n + (n < 32 ? 1 : n < 256 ? 2 : n < 65_536 ? 3 : 5);
}
