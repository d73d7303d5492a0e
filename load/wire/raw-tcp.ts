import { isIPv6 } from 'node:net';
import { getSystemErrorName } from 'node:util';

/**
 * TCP connections on Node's own TCP handle (the `tcp_wrap` binding `net` is built on), without a
 * `net.Socket` around it: the load tool's lean hubs hold tens of thousands per worker, and a
 * handle costs about 1.8 KiB of RSS where a `net.Socket` costs 6–8 (its two stream states, event
 * emitter and buffering; BENCHMARKS.md, 2026-12-01 second, issue 14 target 2). Every connection
 * reads into one buffer of the owner's, as `net`'s `onread` option does. The binding is Node's
 * internal API: this keeps to the calls `net` itself makes, and is for the load tool only. A write
 * after `end` is dropped where `net` would raise `ERR_STREAM_WRITE_AFTER_END`: all a lean hub may
 * write then is a pong to a late ping.
 */

interface TcpHandle {
  bind(address: string, port: number): number;
  bind6(address: string, port: number, flags: number): number;
  connect(req: object, address: string, port: number): number;
  connect6(req: object, address: string, port: number): number;
  setNoDelay(on: boolean): number;
  useUserBuffer(buf: Uint8Array): void;
  readStart(): number;
  writeBuffer(req: object, data: Uint8Array): number;
  shutdown(req: object): number;
  close(cb: () => void): void;
  onread: () => void;
}

interface Binding {
  TCP: new (type: number) => TcpHandle;
  TCPConnectWrap: new () => { oncomplete: (status: number) => void };
  constants: { SOCKET: number };
}

interface StreamBinding {
  WriteWrap: new () => { handle: TcpHandle; buffer: Uint8Array | null; oncomplete: (this: { handle: TcpHandle }, status: number) => void };
  ShutdownWrap: new () => { handle: TcpHandle; oncomplete: (status: number) => void };
  streamBaseState: Int32Array;
  kReadBytesOrError: number;
}

const processBinding = (process as unknown as { binding(name: string): unknown }).binding.bind(process);
const tcp = processBinding('tcp_wrap') as Binding;
const stream = processBinding('stream_wrap') as StreamBinding;
/** libuv's end of stream (UV_EOF) */
const EOF = -4095;

/** A connection's life: connecting (writes wait), open, our end sent, closed. */
const CONNECTING = 0;
const OPEN = 1;
const ENDED = 2;
const CLOSED = 3;

/** One connection: the handle itself, with the few fields its owner and this module keep on it. */
export interface RawConn {
  /** the owner's number for it (a hub's index) */
  readonly tag: number;
}

interface Conn extends TcpHandle, RawConn {
  tag: number;
  st: number;
  /** writes made while connecting, in order */
  early: Uint8Array[] | null;
  /** `end` was called while connecting */
  endLater: boolean;
}

export interface RawTcpEvents {
  /** bytes arrived: a view of the shared buffer, valid until this returns */
  data(tag: number, bytes: Buffer): void;
  /** the connection failed or broke; `closed` follows */
  error(tag: number, err: NodeJS.ErrnoException): void;
  /** the connection is closed: after an error, the peer's close, or `destroy` */
  closed(tag: number, conn: RawConn): void;
}

export interface RawTarget {
  /** an IP address (resolve names first) */
  host: string;
  port: number;
  localAddress?: string;
  localPort?: number;
}

function errnoError(status: number, syscall: string, target?: RawTarget): NodeJS.ErrnoException {
  const code = getSystemErrorName(status);
  const where = target ? ` ${target.host}:${target.port}` : '';
  return Object.assign(new Error(`${syscall} ${code}${where}`), { errno: status, code, syscall });
}

export class RawTcp {
  private readonly onRead: (this: Conn) => void;
  private readonly onWritten: (this: { handle: TcpHandle }, status: number) => void;

  constructor(
    private readonly readBuffer: Buffer,
    private readonly events: RawTcpEvents,
  ) {
    // one function for every connection: `this` is the handle
    const self = this;
    this.onRead = function (this: Conn) {
      const n = stream.streamBaseState[stream.kReadBytesOrError]!;
      if (n > 0) {
        if (this.st !== CLOSED) self.events.data(this.tag, self.readBuffer.subarray(0, n));
      } else if (n === EOF) self.close(this);
      else if (n < 0) self.fail(this, errnoError(n, 'read'));
    };
    // called only for a write that did not complete at once
    this.onWritten = function (status) {
      if (status < 0) self.fail(this.handle as Conn, errnoError(status, 'write'));
    };
  }

  /** Starts a connection; a failure to start it throws, a failure to connect comes as `error`. */
  connect(target: RawTarget, tag: number): RawConn {
    const six = isIPv6(target.host);
    const conn = new tcp.TCP(tcp.constants.SOCKET) as Conn;
    conn.tag = tag;
    conn.st = CONNECTING;
    conn.early = null;
    conn.endLater = false;
    if (target.localAddress !== undefined || target.localPort !== undefined) {
      const local = target.localAddress ?? (six ? '::' : '0.0.0.0');
      const err = six ? conn.bind6(local, target.localPort ?? 0, 0) : conn.bind(local, target.localPort ?? 0);
      if (err) return this.refuse(conn, errnoError(err, 'bind'));
    }
    const req = new tcp.TCPConnectWrap();
    req.oncomplete = (status) => this.connected(conn, status, target);
    const err = six ? conn.connect6(req, target.host, target.port) : conn.connect(req, target.host, target.port);
    if (err) return this.refuse(conn, errnoError(err, 'connect', target));
    return conn;
  }

  /** Sends `bytes` (kept until written); a write made while connecting goes once connected. */
  write(c: RawConn, bytes: Uint8Array): void {
    const conn = c as Conn;
    if (conn.st === CONNECTING) (conn.early ??= []).push(bytes);
    else if (conn.st === OPEN) this.send(conn, bytes);
  }

  /** Sends our end of the connection after what was written; it closes when the peer closes its end. */
  end(c: RawConn): void {
    const conn = c as Conn;
    if (conn.st === CONNECTING) conn.endLater = true;
    else if (conn.st === OPEN) this.shutdown(conn);
  }

  /** Closes at once, unsent bytes dropped; `closed` follows. */
  destroy(c: RawConn): void {
    this.close(c as Conn);
  }

  private connected(conn: Conn, status: number, target: RawTarget): void {
    if (conn.st === CLOSED) return;
    if (status < 0) return this.fail(conn, errnoError(status, 'connect', target));
    conn.st = OPEN;
    conn.setNoDelay(true);
    conn.useUserBuffer(this.readBuffer);
    conn.onread = this.onRead;
    const err = conn.readStart();
    if (err) return this.fail(conn, errnoError(err, 'read'));
    const early = conn.early;
    conn.early = null;
    if (early) for (const bytes of early) this.send(conn, bytes);
    if (conn.endLater && conn.st === OPEN) this.shutdown(conn);
  }

  private send(conn: Conn, bytes: Uint8Array): void {
    const req = new stream.WriteWrap();
    req.handle = conn;
    // held until an asynchronous write completes
    req.buffer = bytes;
    req.oncomplete = this.onWritten;
    const err = conn.writeBuffer(req, bytes);
    if (err) this.fail(conn, errnoError(err, 'write'));
  }

  private shutdown(conn: Conn): void {
    conn.st = ENDED;
    const req = new stream.ShutdownWrap();
    req.handle = conn;
    // a shutdown that fails (the peer gone) shows as the read's error or end
    req.oncomplete = () => undefined;
    conn.shutdown(req);
  }

  private fail(conn: Conn, err: NodeJS.ErrnoException): void {
    if (conn.st === CLOSED) return;
    this.events.error(conn.tag, err);
    this.close(conn);
  }

  private close(conn: Conn): void {
    if (conn.st === CLOSED) return;
    conn.st = CLOSED;
    conn.early = null;
    conn.close(() => this.events.closed(conn.tag, conn));
  }

  /** A connection that could not start: the error, then `closed`, both after this turn (as `net` does). */
  private refuse(conn: Conn, err: NodeJS.ErrnoException): RawConn {
    process.nextTick(() => this.fail(conn, err));
    return conn;
  }
}
