import { randomBytes } from 'node:crypto';

/**
 * The client side of WebSocket framing (RFC 6455), as little as thousands of lean hubs in one
 * process need: masked client frames out; server frames in, from one reader shared by every
 * connection of a process. A connection costs the reader nothing between frames: bytes of a frame
 * cut by a read, and fragments of a message, are kept (copied) only until the frame or message is
 * whole. No extensions are negotiated, so reserved bits are a protocol error.
 */

export const Opcode = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;

/** Close codes the client sends or reports. */
export const CloseCode = { normal: 1000, protocol: 1002, noStatus: 1005, abnormal: 1006, tooLarge: 1009 } as const;

// xorshift32, seeded once: a mask only keeps proxies from reading frames as HTTP, it guards no secret
let maskState = randomBytes(4).readUInt32LE(0) || 1;
function nextMask(): number {
  maskState ^= maskState << 13;
  maskState ^= maskState >>> 17;
  maskState ^= maskState << 5;
  return maskState >>> 0;
}

/**
 * One masked frame in a new buffer: header, masking key, masked payload. New because a socket
 * may keep a written buffer until the kernel takes it; small ones come from Node's shared pool.
 */
export function clientFrame(opcode: number, payload: Uint8Array, fin = true): Buffer {
  const n = payload.length;
  const h = n < 126 ? 2 : n < 65_536 ? 4 : 10;
  const out = Buffer.allocUnsafe(h + 4 + n);
  out[0] = (fin ? 0x80 : 0) | opcode;
  if (h === 2) out[1] = 0x80 | n;
  else if (h === 4) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(n, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeUInt32BE(Math.floor(n / 2 ** 32), 2);
    out.writeUInt32BE(n >>> 0, 6);
  }
  out.writeUInt32BE(nextMask(), h);
  const k = h + 4;
  for (let i = 0; i < n; i++) out[k + i] = payload[i]! ^ out[h + (i & 3)]!;
  return out;
}

/** A close frame's payload: the code, then the reason (cut to fit the 125 bytes of a control frame). */
export function closeFrame(code: number, reason = ''): Buffer {
  const text = Buffer.from(reason, 'utf8').subarray(0, 123);
  const payload = Buffer.allocUnsafe(2 + text.length);
  payload.writeUInt16BE(code, 0);
  text.copy(payload, 2);
  return clientFrame(Opcode.close, payload);
}

/** What the reader finds, by connection number. Payloads may point into the caller's read buffer: valid during the call only. */
export interface FrameSink {
  message(conn: number, data: Buffer, binary: boolean): void;
  ping(conn: number, data: Buffer): void;
  pong(conn: number, data: Buffer): void;
  /** the server's close frame (code 1005 when it had none); nothing more is read from `conn` */
  close(conn: number, code: number, reason: string): void;
  /** the server broke the protocol: the caller closes with `code` (1002, or 1009 for too large); nothing more is read */
  fail(conn: number, code: number, reason: string): void;
}

/** An unfinished frame: its pieces so far, and its whole length once the header is in (0 before). */
interface Partial {
  pieces: Buffer[];
  size: number;
  need: number;
}

interface Fragments {
  binary: boolean;
  parts: Buffer[];
  size: number;
}

/** Codes a peer may send in a close frame (RFC 6455 7.4, and 3000-4999 for applications). */
function validCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) || (code >= 3000 && code <= 4999);
}

/** The whole length of the frame starting `buf` (header and payload), or 0 while its header is cut. */
function frameLength(buf: Buffer): number {
  if (buf.length < 2) return 0;
  const len = buf[1]! & 0x7f;
  if (len < 126) return 2 + len;
  if (len === 126) return buf.length < 4 ? 0 : 4 + buf.readUInt16BE(2);
  return buf.length < 10 ? 0 : 10 + buf.readUInt32BE(2) * 2 ** 32 + buf.readUInt32BE(6);
}

export class FrameReader {
  /** bytes of an unfinished frame, by connection */
  private readonly partial = new Map<number, Partial>();
  /** an unfinished fragmented message, by connection */
  private readonly fragments = new Map<number, Fragments>();

  constructor(
    private readonly sink: FrameSink,
    /** largest message accepted, payload bytes; a longer frame or message fails with 1009 */
    readonly maxMessage: number,
  ) {}

  /** Reads what arrived on `conn`; `bytes` may be a shared read buffer (whatever is kept is copied). */
  feed(conn: number, bytes: Uint8Array): void {
    let buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const before = this.partial.get(conn);
    if (before !== undefined) {
      // pieces of a long frame are joined once, when the last one is in
      before.pieces.push(Buffer.from(buf));
      before.size += buf.length;
      if (before.need > before.size) return;
      this.partial.delete(conn);
      buf = Buffer.concat(before.pieces, before.size);
    }
    let off = 0;
    while (off < buf.length) {
      const used = this.frame(conn, buf, off);
      if (used < 0) return this.drop(conn);
      if (used === 0) break;
      off += used;
    }
    if (off < buf.length) {
      const rest = Buffer.from(buf.subarray(off));
      this.partial.set(conn, { pieces: [rest], size: rest.length, need: frameLength(rest) });
    }
  }

  /** Forgets what `conn` had half read (its socket closed, or a new one takes its number). */
  drop(conn: number): void {
    this.partial.delete(conn);
    this.fragments.delete(conn);
  }

  /** Connections with a frame or message half read (a test's view of what the reader holds). */
  get holding(): number {
    return new Set([...this.partial.keys(), ...this.fragments.keys()]).size;
  }

  /** Bytes used by the frame at `off`; 0: not whole yet; -1: `conn` is done (closed or failed). */
  private frame(conn: number, buf: Buffer, off: number): number {
    const avail = buf.length - off;
    if (avail < 2) return 0;
    const b0 = buf[off]!;
    const b1 = buf[off + 1]!;
    const fin = (b0 & 0x80) !== 0;
    const opcode = b0 & 0x0f;
    if ((b0 & 0x70) !== 0) return this.fail(conn, CloseCode.protocol, 'reserved bits set');
    if ((b1 & 0x80) !== 0) return this.fail(conn, CloseCode.protocol, 'masked server frame');
    let len = b1 & 0x7f;
    let h = 2;
    if (len === 126) {
      if (avail < 4) return 0;
      len = buf.readUInt16BE(off + 2);
      h = 4;
    } else if (len === 127) {
      if (avail < 10) return 0;
      len = buf.readUInt32BE(off + 2) * 2 ** 32 + buf.readUInt32BE(off + 6);
      h = 10;
    }
    const control = opcode >= Opcode.close;
    if (control) {
      if (opcode > Opcode.pong) return this.fail(conn, CloseCode.protocol, `unknown opcode ${opcode}`);
      if (!fin || len > 125) return this.fail(conn, CloseCode.protocol, 'fragmented or long control frame');
    } else {
      if (opcode > Opcode.binary) return this.fail(conn, CloseCode.protocol, `unknown opcode ${opcode}`);
      // refused from the header alone: an oversized frame is never buffered
      if (len + (this.fragments.get(conn)?.size ?? 0) > this.maxMessage) return this.fail(conn, CloseCode.tooLarge, `message over ${this.maxMessage} bytes`);
    }
    if (avail < h + len) return 0;
    const payload = buf.subarray(off + h, off + h + len);
    if (control) return this.control(conn, opcode, payload) ? h + len : -1;
    return this.data(conn, opcode, fin, payload) ? h + len : -1;
  }

  private control(conn: number, opcode: number, payload: Buffer): boolean {
    if (opcode === Opcode.ping) this.sink.ping(conn, payload);
    else if (opcode === Opcode.pong) this.sink.pong(conn, payload);
    else {
      const code = payload.length >= 2 ? payload.readUInt16BE(0) : CloseCode.noStatus;
      if (payload.length === 1 || (payload.length >= 2 && !validCloseCode(code))) {
        this.fail(conn, CloseCode.protocol, `invalid close frame (${payload.length} bytes, code ${code})`);
        return false;
      }
      this.drop(conn);
      this.sink.close(conn, code, payload.toString('utf8', 2));
      return false;
    }
    return true;
  }

  private data(conn: number, opcode: number, fin: boolean, payload: Buffer): boolean {
    const open = this.fragments.get(conn);
    if (opcode === Opcode.continuation) {
      if (open === undefined) {
        this.fail(conn, CloseCode.protocol, 'continuation without a first fragment');
        return false;
      }
      open.parts.push(Buffer.from(payload));
      open.size += payload.length;
      if (!fin) return true;
      this.fragments.delete(conn);
      this.sink.message(conn, Buffer.concat(open.parts, open.size), open.binary);
      return true;
    }
    if (open !== undefined) {
      this.fail(conn, CloseCode.protocol, 'new message before the last fragment');
      return false;
    }
    const binary = opcode === Opcode.binary;
    if (fin) this.sink.message(conn, payload, binary);
    else this.fragments.set(conn, { binary, parts: [Buffer.from(payload)], size: payload.length });
    return true;
  }

  private fail(conn: number, code: number, reason: string): -1 {
    this.drop(conn);
    this.sink.fail(conn, code, reason);
    return -1;
  }
}
