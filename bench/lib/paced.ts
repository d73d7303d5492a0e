import { connect, type Socket } from 'node:net';
import { newHistogram, recordMs, summarize } from '../../load/lib/histogram.js';
import type { CannonResult } from './cannon.js';
import { cpuMs, cpuSplitMs } from '../../load/harness/index.js';

/**
 * An open-loop, constant-rate HTTP/1.1 load for the fixed-rate runs. autocannon's rate limit
 * sends each connection's whole per-second budget at the start of the second, so its latencies
 * at a fixed rate measure its own bursts; this sends request k at start + k/rate (checked every
 * millisecond) on an idle keep-alive connection. A request that found every connection busy waits
 * (counted in `late`) and its latency runs from when it was due, its wait included (no coordinated
 * omission); one sent at once is timed from its write (the timer's millisecond granularity is the
 * load tool's, not the server's: measured from its due time every median read 1–1.5 ms more).
 * Only for the bench targets here (uWS answers with Content-Length, never chunked).
 */

interface Conn {
  socket: Socket;
  busy: boolean;
  /** when its request's latency starts: its write, or its due time when it had to wait */
  dueAt: number;
  buf: Buffer;
}

export interface PacedOptions {
  url: string;
  rate: number;
  durationS: number;
  connections: number;
  method: 'GET' | 'POST';
  path: string | (() => string);
  body?: string;
  headers?: Record<string, string>;
  pid: number;
  others?: Record<string, number[]>;
}

export async function paced(o: PacedOptions): Promise<CannonResult> {
  const u = new URL(o.url);
  const port = Number(u.port || 80);
  const host = u.hostname;
  const extra = Object.entries({ ...o.headers, ...(o.body !== undefined ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(o.body)) } : {}) })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  const head = (path: string) => `${o.method} ${path} HTTP/1.1\r\nhost: ${u.host}\r\n${extra}\r\n${o.body ?? ''}`;
  const hist = newHistogram();
  let ok = 0;
  let non2xx = 0;
  let errors = 0;
  let late = 0;
  const idle: Conn[] = [];
  const waiting: { req: string; dueAt: number }[] = [];

  const conns = await Promise.all(
    Array.from(
      { length: o.connections },
      () =>
        new Promise<Conn>((resolve, reject) => {
          const socket = connect({ host, port, noDelay: true }, () => resolve(c));
          const c: Conn = { socket, busy: false, dueAt: 0, buf: Buffer.alloc(0) };
          socket.once('error', reject);
          socket.on('data', (chunk: Buffer) => onData(c, chunk));
        }),
    ),
  );
  for (const c of conns) {
    c.socket.on('error', () => {
      errors++;
    });
    idle.push(c);
  }

  function send(c: Conn, req: string, dueAt: number): void {
    c.busy = true;
    c.dueAt = dueAt;
    c.socket.write(req);
  }

  function onData(c: Conn, chunk: Buffer): void {
    c.buf = c.buf.length === 0 ? chunk : Buffer.concat([c.buf, chunk]);
    for (;;) {
      const end = c.buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const header = c.buf.subarray(0, end).toString('latin1');
      const m = /\r\ncontent-length:\s*(\d+)/i.exec(header);
      const len = m ? Number(m[1]) : 0;
      if (c.buf.length < end + 4 + len) return;
      const status = Number(header.slice(9, 12));
      c.buf = c.buf.subarray(end + 4 + len);
      if (status >= 200 && status < 300) {
        ok++;
        recordMs(hist, performance.now() - c.dueAt);
      } else non2xx++;
      c.busy = false;
      const next = waiting.shift();
      if (next !== undefined) send(c, next.req, next.dueAt);
      else idle.push(c);
    }
  }

  const sumCpu = (pids: number[]) => pids.reduce((n, p) => n + cpuMs(p), 0);
  const cpu0 = cpuSplitMs(o.pid);
  const others0 = Object.fromEntries(Object.entries(o.others ?? {}).map(([k, pids]) => [k, sumCpu(pids)]));
  const started = performance.now();
  const endAt = started + o.durationS * 1000;
  let issued = 0;
  const total = Math.round(o.durationS * o.rate);
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const now = performance.now();
      // the last tick issues the whole count (float subtraction could leave it one short)
      const due = now >= endAt ? total : Math.min(total, Math.floor(((now - started) * o.rate) / 1000));
      for (; issued < due; issued++) {
        const req = head(typeof o.path === 'string' ? o.path : o.path());
        const dueAt = started + (issued * 1000) / o.rate;
        const c = idle.pop();
        if (c) send(c, req, performance.now());
        else {
          late++;
          waiting.push({ req, dueAt });
        }
      }
      if (now >= endAt) {
        clearInterval(timer);
        resolve();
      }
    }, 1);
  });
  // let the requests in flight finish (bounded)
  const drainUntil = performance.now() + 5_000;
  while ((waiting.length > 0 || conns.some((c) => c.busy)) && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 5));
  const durationS = (performance.now() - started) / 1000;
  const split = cpuSplitMs(o.pid);
  const cpu = split.user + split.sys - cpu0.user - cpu0.sys;
  for (const c of conns) c.socket.destroy();
  const perOk = (ms: number) => (ok === 0 ? 0 : Math.round((ms * 1000) / ok));
  return {
    ...summarize(hist),
    perSec: Math.round(ok / o.durationS),
    ok,
    non2xx,
    errors,
    timeouts: waiting.length + conns.filter((c) => c.busy).length,
    durationS: Math.round(durationS * 10) / 10,
    cpuUsPerReq: perOk(cpu),
    cpuSysUsPerReq: perOk(split.sys - cpu0.sys),
    otherCpuUsPerReq: Object.fromEntries(Object.entries(o.others ?? {}).map(([k, pids]) => [k, perOk(sumCpu(pids) - others0[k]!)])),
    late,
  };
}
