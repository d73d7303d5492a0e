import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { Packr, Unpackr } from 'msgpackr';
import WebSocket from 'ws';
import type { Attrs, DeviceInfo } from '../proto/frames.js';
import {
  emptyCounters,
  httpBaseOf,
  type AppSpec,
  type ConnectResult,
  type FromWorker,
  type HubSpec,
  type Snapshot,
  type StormResult,
  type ToWorker,
  type WorkerConfig,
} from './fleet-protocol.js';
import { encodeHistogram, newHistogram, recordMs } from './lib/histogram.js';
import { ConnectError, LeanHub } from './lean-hub.js';

/**
 * One load worker process: holds a share of the hubs (lean hubs) and app subscribers, and on the
 * parent's word provisions, connects, reports, sends HTTP commands or storms. Every second it
 * sends its counters and the interval's latency histograms; nothing here runs unbounded: the
 * parent decides how long each phase lasts and stops the worker (it also exits when the parent
 * goes away).
 */

interface Slot {
  spec: HubSpec;
  hub: LeanHub;
  attempt: number;
  /** a reconnect is scheduled or under way */
  retrying: boolean;
}

interface App {
  spec: AppSpec;
  ws: WebSocket | null;
}

const KINDS: Array<{ k: string; m: string; state: Attrs }> = [
  { k: 'switch', m: 'sw-1', state: { on: false } },
  { k: 'plug', m: 'plug-2', state: { on: false, power: 0, energy: 12.5 } },
  { k: 'sensor.temperature', m: 'th-3', state: { temperature: 21.5, humidity: 45, battery: 90 } },
  { k: 'sensor.door', m: 'door-1', state: { open: false, battery: 88 } },
  { k: 'sensor.motion', m: 'pir-2', state: { motion: false, lux: 120, battery: 77 } },
  { k: 'lock', m: 'lock-1', state: { locked: true, battery: 66 } },
  { k: 'curtain', m: 'cur-1', state: { position: 100, moving: false } },
  { k: 'sensor.leak', m: 'leak-1', state: { leak: false, battery: 95 } },
];

const packr = new Packr({ useRecords: false, variableMapSize: true, mapsAsObjects: true, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

/** Wall clock with sub-ms resolution, comparable between processes of one machine. */
const wallNow = () => performance.timeOrigin + performance.now();

let config: WorkerConfig | null = null;
const slots: Slot[] = [];
const apps: App[] = [];
const counters = emptyCounters();
const total = { connect: newHistogram(), command: newHistogram(), reportToApp: newHistogram(), reportToAck: newHistogram() };
const interval = { connect: newHistogram(), command: newHistogram(), reportToApp: newHistogram(), reportToAck: newHistogram() };
let stopping = false;
let storming = false;
let reportTimer: NodeJS.Timeout | null = null;
let commandTimer: NodeJS.Timeout | null = null;
let inflight = 0;
const MAX_INFLIGHT = 2_048;
const agents = { http: new http.Agent({ keepAlive: true, maxSockets: 256 }), https: new https.Agent({ keepAlive: true, maxSockets: 256 }) };

function bump(code: string): void {
  counters.errors[code] = (counters.errors[code] ?? 0) + 1;
}

function record(which: keyof typeof total, ms: number): void {
  recordMs(total[which], ms);
  recordMs(interval[which], ms);
}

function send(msg: FromWorker): void {
  if (process.connected) process.send!(msg);
}

function cfg(): WorkerConfig {
  if (!config) throw new Error('worker not initialised');
  return config;
}

/** Explicit source ports: below the kernel's ephemeral range, this worker's slice of it. */
let portRange: { lo: number; hi: number } | null = null;
let portCursor = 0;
let sourceCursor = 0;

function initPorts(c: WorkerConfig): void {
  if (c.sourceAddresses.length === 0) return;
  let ephemeralLow = 32_768;
  try {
    ephemeralLow = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  } catch {
    // not Linux: keep the usual default
  }
  const lo = 1_024;
  const hi = ephemeralLow - 1;
  if (hi - lo < 4_096) return; // too few: let the kernel choose
  const slice = c.portSlice ?? { index: 0, count: 1 };
  const size = Math.floor((hi - lo + 1) / slice.count);
  portRange = { lo: lo + slice.index * size, hi: lo + (slice.index + 1) * size - 1 };
  portCursor = Math.floor(Math.random() * size);
}

/** The next source (address, port) of this worker; undefined: the system's choice. */
function nextSource(): { address: string; port?: number } | undefined {
  const list = cfg().sourceAddresses;
  if (list.length === 0) return undefined;
  const address = list[sourceCursor++ % list.length]!;
  if (!portRange) return { address };
  const port = portRange.lo + (portCursor++ % (portRange.hi - portRange.lo + 1));
  return { address, port };
}

/** Local ports taken by someone else (or in TIME_WAIT): try the next one at once. */
const PORT_TAKEN = new Set(['EADDRINUSE', 'EADDRNOTAVAIL', 'EACCES']);

function init(c: WorkerConfig): void {
  config = c;
  initPorts(c);
  for (const spec of c.hubs) {
    // the hub's callbacks need its slot, and the slot its hub
    let slot: Slot | null = null;
    const hub = new LeanHub(
      {
        url: c.targets[spec.target]!,
        hubId: spec.id,
        homeId: spec.home,
        secret: c.signed ? (spec.secret ?? '') : null,
        source: nextSource,
        connectTimeoutMs: c.connectTimeoutMs,
        path: c.path,
        hello: c.hello,
      },
      {
        onClose: (_hub, code) => {
          if (slot) onSessionClosed(slot, code);
        },
        onErrorFrame: (_hub, code) => bump(`frame:${code}`),
        onCommand: () => counters.commandsAnswered++,
        onAck: () => counters.acks++,
        onReportAck: (_hub, ms) => record('reportToAck', ms),
      },
    );
    slot = { spec, hub, attempt: 0, retrying: false };
    slots.push(slot);
  }
  counters.hubs = slots.length;
  for (const spec of c.apps) apps.push({ spec, ws: null });
}

// ---------------------------------------------------------------- HTTP (admin API, commands)

interface HttpAnswer {
  status: number;
  body: Record<string, unknown>;
}

function request(base: string, method: string, path: string, body: unknown, token: string | null): Promise<HttpAnswer> {
  const url = new URL(path, base);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const secure = url.protocol === 'https:';
  const headers: Record<string, string> = {};
  if (token !== null) headers.authorization = `Bearer ${token}`;
  if (payload !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(Buffer.byteLength(payload));
  }
  return new Promise((resolve, reject) => {
    const req = (secure ? https : http).request(url, { method, headers, agent: secure ? agents.https : agents.http }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        let parsed: Record<string, unknown> = {};
        try {
          parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
      res.on('error', reject);
    });
    req.setTimeout(60_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(payload);
  });
}

async function provision(): Promise<{ ok: number; failed: number }> {
  const c = cfg();
  let ok = 0;
  let failed = 0;
  await mapLimit(slots, 16, async (slot) => {
    if (slot.spec.secret !== undefined) return;
    const base = httpBaseOf(c.targets[slot.spec.target]!);
    try {
      const res = await request(base, 'POST', '/v1/admin/hubs', { hubId: slot.spec.id, homeId: slot.spec.home, model: 'load-hub' }, c.adminToken);
      if (res.status === 201 && typeof res.body.secret === 'string') {
        slot.spec.secret = res.body.secret;
        slot.hub.secret = res.body.secret;
        ok++;
        return;
      }
      bump(`provision:${String(res.body.code ?? res.status)}`);
    } catch (err) {
      bump(`provision:${(err as NodeJS.ErrnoException).code ?? 'failed'}`);
    }
    failed++;
  });
  return { ok, failed };
}

// ---------------------------------------------------------------- hubs

function deviceList(n: number): DeviceInfo[] {
  return Array.from({ length: n }, (_, j) => ({ d: `dev-${j}`, k: KINDS[j % KINDS.length]!.k, m: KINDS[j % KINDS.length]!.m }));
}

function fill(hub: LeanHub): void {
  const n = cfg().devices;
  if (n === 0) return;
  hub.devices(deviceList(n));
  const r: Record<string, Attrs> = {};
  for (let j = 0; j < n; j++) r[`dev-${j}`] = { ...KINDS[j % KINDS.length]!.state };
  hub.report(r);
  counters.reportsSent++;
}

/** One connect, retried at once when the chosen source port was taken. */
async function dial(hub: LeanHub): Promise<number> {
  for (let tries = 0; ; tries++) {
    try {
      return await hub.connect();
    } catch (err) {
      if (!(err instanceof ConnectError) || !PORT_TAKEN.has(err.code) || tries >= 32) throw err;
      counters.errors['source:port_taken'] = (counters.errors['source:port_taken'] ?? 0) + 1;
    }
  }
}

async function connectOne(slot: Slot): Promise<boolean> {
  try {
    const ms = await dial(slot.hub);
    record('connect', ms);
    counters.connects++;
    counters.connected++;
    slot.attempt = 0;
    if (cfg().fill && cfg().hello !== false) fill(slot.hub);
    return true;
  } catch (err) {
    counters.connectFailures++;
    bump(`connect:${err instanceof ConnectError ? err.code : 'connect_failed'}`);
    return false;
  }
}

async function connectAll(perSec: number): Promise<ConnectResult> {
  const started = performance.now();
  let ok = 0;
  let failed = 0;
  let n = 0;
  await mapLimit(slots, cfg().connectConcurrency, async (slot) => {
    if (slot.hub.connected) return;
    if (perSec > 0) {
      // the ramp: connection k starts no earlier than k / perSec seconds after the first
      const wait = started + (n++ * 1000) / perSec - performance.now();
      if (wait > 0) await sleep(wait);
    }
    if ((await connectOne(slot)) === true) ok++;
    else failed++;
  });
  return { ok, failed, elapsedMs: performance.now() - started };
}

function onSessionClosed(slot: Slot, code: number): void {
  counters.connected--;
  if (stopping || storming) return;
  counters.disconnects++;
  bump(`close:${code}`);
  if (cfg().reconnect) scheduleReconnect(slot);
}

function scheduleReconnect(slot: Slot): void {
  if (slot.retrying || stopping) return;
  slot.retrying = true;
  const delay = Math.random() * Math.min(30_000, 1_000 * 2 ** Math.min(slot.attempt, 5));
  slot.attempt++;
  setTimeout(() => {
    slot.retrying = false;
    if (stopping || storming || slot.hub.connected) return;
    void connectOne(slot).then((ok) => {
      if (!ok) scheduleReconnect(slot);
    });
  }, delay).unref();
}

/** One sweep a second: a heartbeat from every hub that sent nothing for most of its interval. */
const heartbeats = setInterval(() => {
  const now = Date.now();
  for (const s of slots) {
    const h = s.hub;
    if (h.hb > 0 && h.connected && now - h.lastSent >= h.hb - 1_500) h.heartbeat();
  }
}, 1_000);
heartbeats.unref();

function startReports(everyMs: number): void {
  if (reportTimer) clearInterval(reportTimer);
  reportTimer = null;
  if (everyMs <= 0 || slots.length === 0) return;
  const TICK = 20;
  const perTick = (slots.length * TICK) / everyMs;
  let owed = 0;
  let cursor = Math.floor(Math.random() * slots.length);
  const n = Math.max(1, cfg().devices);
  reportTimer = setInterval(() => {
    owed += perTick;
    while (owed >= 1) {
      owed--;
      const slot = slots[cursor++ % slots.length]!;
      const dev = `dev-${(cursor * 7) % n}`;
      // `lt` is the send time: the app subscriber that receives the state event measures the latency
      if (slot.hub.report({ [dev]: { temperature: 15 + ((cursor * 13) % 150) / 10, lt: wallNow() } })) counters.reportsSent++;
    }
  }, TICK);
}

function startCommands(perSec: number): void {
  if (commandTimer) clearInterval(commandTimer);
  commandTimer = null;
  if (perSec <= 0 || slots.length === 0) return;
  const c = cfg();
  const TICK = 10;
  let owed = 0;
  commandTimer = setInterval(() => {
    owed += (perSec * TICK) / 1000;
    while (owed >= 1) {
      owed--;
      const slot = slots[Math.floor(Math.random() * slots.length)]!;
      if (!slot.hub.connected) continue;
      if (inflight >= MAX_INFLIGHT) {
        bump('command:client_backlog');
        continue;
      }
      const dev = `dev-${Math.floor(Math.random() * Math.max(1, c.devices))}`;
      const base = httpBaseOf(c.targets[slot.spec.target]!);
      const started = performance.now();
      inflight++;
      counters.commandsSent++;
      request(base, 'POST', `/v1/hubs/${slot.spec.id}/devices/${dev}/commands`, { set: { on: Math.random() < 0.5 } }, c.adminToken).then(
        (res) => {
          inflight--;
          if (res.status === 200) {
            counters.commandsOk++;
            record('command', performance.now() - started);
          } else {
            counters.commandsFailed++;
            bump(`command:${String(res.body.code ?? res.status)}`);
          }
        },
        (err: unknown) => {
          inflight--;
          counters.commandsFailed++;
          bump(`command:${(err as NodeJS.ErrnoException).code ?? 'failed'}`);
        },
      );
    }
  }, TICK);
}

async function storm(deadlineMs: number): Promise<StormResult> {
  const online = slots.filter((s) => s.hub.connected);
  storming = true;
  const started = performance.now();
  await Promise.all(online.map((s) => s.hub.terminate()));
  let back = 0;
  let attempts = 0;
  let last = 0;
  const deadline = started + deadlineMs;
  await Promise.all(
    online.map(async (slot) => {
      for (let attempt = 0; performance.now() < deadline && !stopping; attempt++) {
        attempts++;
        try {
          const ms = await dial(slot.hub);
          record('connect', ms);
          counters.connects++;
          counters.connected++;
          if (cfg().fill) fill(slot.hub);
          back++;
          last = performance.now();
          return;
        } catch (err) {
          counters.connectFailures++;
          bump(`storm:${err instanceof ConnectError ? err.code : 'connect_failed'}`);
        }
        await sleep(Math.random() * Math.min(5_000, 100 * 2 ** Math.min(attempt, 6)));
      }
    }),
  );
  storming = false;
  return { hubs: online.length, back, allBackMs: back === online.length ? last - started : performance.now() - started, attempts };
}

// ---------------------------------------------------------------- app subscribers

function onAppMessage(data: Buffer): void {
  let m: Record<string, unknown>;
  try {
    m = unpackr.unpack(data) as Record<string, unknown>;
  } catch {
    bump('app:undecodable');
    return;
  }
  const now = wallNow();
  if (m.op === 'evt') {
    if (m.kind !== 'state') return;
    counters.eventsReceived++;
    const lt = (m.attrs as Attrs | undefined)?.lt;
    if (typeof lt === 'number') record('reportToApp', now - lt);
  } else if (m.op === 'err') bump(`app:${String(m.code)}`);
  else if (m.t === 4 && typeof m.r === 'object' && m.r !== null) {
    // the relay floor forwards the hub's report frame as it is
    counters.eventsReceived++;
    for (const attrs of Object.values(m.r as Record<string, Attrs>)) if (typeof attrs.lt === 'number') record('reportToApp', now - attrs.lt);
  }
}

async function connectApp(app: App, index: number): Promise<boolean> {
  const c = cfg();
  const base = c.targets[app.spec.target]!.replace(/\/+$/, '');
  let url: string;
  if (c.adminToken !== null && c.signed) {
    const res = await request(httpBaseOf(base), 'POST', '/v1/admin/tokens', { sub: `load-app-${index}`, homes: app.spec.homes, ttlS: 86_400 }, c.adminToken);
    if (res.status !== 201 || typeof res.body.token !== 'string') {
      bump(`app:token_${String(res.body.code ?? res.status)}`);
      return false;
    }
    url = `${base}/app/v1?enc=msgpack&token=${encodeURIComponent(res.body.token)}`;
  } else url = `${base}/app/v1?enc=msgpack&homes=${app.spec.homes.join(',')}`;
  const src = nextSource();
  const ws = new WebSocket(url, { perMessageDeflate: false, ...(src !== undefined ? { localAddress: src.address, ...(src.port !== undefined ? { localPort: src.port } : {}) } : {}) });
  app.ws = ws;
  return new Promise<boolean>((resolve) => {
    let pending = c.signed ? app.spec.homes.length : 0;
    const timer = setTimeout(() => {
      bump('app:timeout');
      resolve(false);
    }, c.connectTimeoutMs);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      resolve(ok);
    };
    ws.on('open', () => {
      counters.apps++;
      if (pending === 0) return done(true);
      app.spec.homes.forEach((home, i) => ws.send(packr.pack({ op: 'sub', id: i + 1, home }), { binary: true }));
    });
    ws.on('message', (data: Buffer) => {
      if (pending > 0) {
        const m = unpackr.unpack(data) as { op?: string };
        if (m.op === 'ok' && --pending === 0) done(true);
      }
      onAppMessage(data);
    });
    ws.on('error', (err: NodeJS.ErrnoException) => {
      bump(`app:${err.code ?? 'error'}`);
      done(false);
    });
    ws.on('close', () => {
      if (app.ws === ws) {
        counters.apps--;
        app.ws = null;
        if (!stopping) bump('app:closed');
      }
    });
  });
}

// ---------------------------------------------------------------- plumbing

async function mapLimit<T>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const run = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, run));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function histogramsOf(h: typeof total) {
  return {
    connect: encodeHistogram(h.connect),
    command: encodeHistogram(h.command),
    reportToApp: encodeHistogram(h.reportToApp),
    reportToAck: encodeHistogram(h.reportToAck),
  };
}

const ticker = setInterval(() => {
  send({ type: 'tick', counters: structuredClone(counters), interval: histogramsOf(interval) });
  interval.connect.reset();
  interval.command.reset();
  interval.reportToApp.reset();
  interval.reportToAck.reset();
}, 1_000);

async function stop(): Promise<void> {
  stopping = true;
  startReports(0);
  startCommands(0);
  clearInterval(heartbeats);
  clearInterval(ticker);
  for (const s of slots) if (s.hub.connected) s.hub.bye();
  for (const a of apps) a.ws?.close(1000, 'load tool done');
  await sleep(300);
  for (const s of slots) void s.hub.terminate();
}

async function handle(msg: ToWorker): Promise<unknown> {
  switch (msg.type) {
    case 'init':
      init(msg.config);
      return undefined;
    case 'provision':
      return provision();
    case 'connect':
      return connectAll(msg.perSec ?? 0);
    case 'apps': {
      let ok = 0;
      await mapLimit(apps, 32, async (app, i) => {
        if (await connectApp(app, i).catch(() => false)) ok++;
      });
      return { ok, failed: apps.length - ok };
    }
    case 'reports':
      startReports(msg.everyMs);
      return undefined;
    case 'commands':
      startCommands(msg.perSec);
      return undefined;
    case 'storm':
      return storm(msg.deadlineMs);
    case 'reset':
      for (const h of [...Object.values(total), ...Object.values(interval)]) h.reset();
      return undefined;
    case 'snapshot':
      return { counters: structuredClone(counters), total: histogramsOf(total) } satisfies Snapshot;
    case 'stop':
      await stop();
      return undefined;
  }
}

process.on('message', (msg: ToWorker) => {
  handle(msg).then(
    (data) => {
      send({ type: 'reply', rid: msg.rid, ok: true, data });
      if (msg.type === 'stop') setTimeout(() => process.exit(0), 50);
    },
    (err: unknown) => send({ type: 'reply', rid: msg.rid, ok: false, error: (err as Error).stack ?? String(err) }),
  );
});
process.on('disconnect', () => process.exit(0));
