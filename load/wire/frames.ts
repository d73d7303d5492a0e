import {
  FrameType,
  PROTOCOL_VERSION,
  decodeServerFrame,
  decodeValue,
  encodeValue,
  type Attrs,
  type ByeFrame,
  type DeviceInfo,
  type DevicesFrame,
  type EventFrame,
  type HeartbeatFrame,
  type HelloFrame,
  type HubToServerFrame,
  type ReportFrame,
  type ResultFrame,
  type ServerToHubFrame,
} from '../../src/index.js';

/**
 * Typed builders of the frames a hub sends (proto/frames.ts), and the one way to read what the
 * server sends. Bytes go through the server's own codec (src/protocol/codec.ts): plain msgpack,
 * absent optional fields left out, so every client in load/ writes what a firmware would.
 */

/** What a command handler answers; a thrown error becomes `{ ok: false, e: 'command_failed' }`. */
export type CommandOutcome = { ok: true; r?: unknown } | { ok: false; e: string; msg?: string };

export const frames = {
  hello: (boot: string, fw?: string): HelloFrame => ({ t: FrameType.hello, v: PROTOCOL_VERSION, b: boot, fw }),
  heartbeat: (ts?: number): HeartbeatFrame => ({ t: FrameType.heartbeat, ts }),
  report: (s: number, r: Record<string, Attrs>, ts?: number): ReportFrame => ({ t: FrameType.report, s, r, ts }),
  event: (s: number, d: string, e: string, p?: Attrs, ts?: number): EventFrame => ({ t: FrameType.event, s, d, e, p, ts }),
  /** `f: true`: `j` is the complete list; otherwise joins (`j`) and leaves (`l`) */
  devices: (s: number, list: { f?: boolean; j?: DeviceInfo[]; l?: string[] }): DevicesFrame => ({ t: FrameType.devices, s, f: list.f, j: list.j, l: list.l }),
  result: (id: number, out: CommandOutcome): ResultFrame =>
    out.ok ? { t: FrameType.result, id, ok: true, r: out.r } : { t: FrameType.result, id, ok: false, e: out.e, msg: out.msg },
  bye: (msg?: string): ByeFrame => ({ t: FrameType.bye, msg }),
} as const;

/** The bytes of a frame as a hub sends them: one built above, or any map (protocol tests send wrong ones). */
export function encodeFrame(frame: HubToServerFrame | object): Buffer {
  return encodeValue(frame);
}

/** A server frame, validated field by field; throws the codec's ProtocolError otherwise. */
export function decodeServer(bytes: Uint8Array): ServerToHubFrame {
  return decodeServerFrame(bytes);
}

/**
 * A server frame's fields as sent, without validation (the lean hub's read: an ack costs one
 * decode and no checks); null when the bytes are not one msgpack map.
 */
export type LooseServerFrame = { [K in 't' | 'id' | 's' | 'hb' | 'ref' | 'e' | 'p']?: unknown };

export function peekServer(bytes: Uint8Array): LooseServerFrame | null {
  try {
    const v = decodeValue(bytes);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as LooseServerFrame) : null;
  } catch {
    return null;
  }
}
