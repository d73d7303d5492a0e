import { Packr, Unpackr } from 'msgpackr';
// the uWS loader alone: the floor must not load (and measure) anything of the server
import { loadUws, type HttpResponse, type WebSocket } from '../src/transport/uws.js';

/**
 * The floors the benchmarks compare the server against, all in one bare uWS process (no auth,
 * no validation, no actors, no timers):
 *
 *   GET  /bare                                       the bare uWS GET handler
 *   POST /v1/hubs/:hubId/devices/:deviceId/commands  the relay floor: the body becomes a command
 *        frame to the connected hub (JSON → msgpack, the translation any implementation must do),
 *        the hub's result frame becomes the HTTP answer `{"ok":true,"result":...}`
 *   ws   /hub/v1   hubs (hub id and home from plain `x-hub-id`/`x-hub-home` headers): hello is
 *        answered with a welcome, reports and device lists with an ack, reports are published
 *        as they are to the home's app subscribers (the telemetry floor)
 *   ws   /app/v1?homes=a,b                            app subscribers of the telemetry floor
 *   ws   /idle                                        a socket and nothing else (memory floor)
 *   ws   /echo                                        every message answered with its own bytes (the floor of
 *        sparse traffic: a heartbeat's answer, bench/sparse-floor.bench.ts)
 *   ws   /refuse   every upgrade answered `503` with Retry-After and a JSON body the size of a node's
 *        `busy` (the floor of refusing a handshake, bench/refusal.bench.ts)
 *
 * Env: PORT (0: any), HOST (127.0.0.1). Prints one JSON line `{"ready":true,"port":N,...}`.
 */

interface HubData {
  hubId: string;
  home: string;
}

interface Pending {
  res: HttpResponse;
  aborted: boolean;
}

const binding = loadUws({ requireNative: process.env.UWS_REQUIRE_NATIVE === '1', onWarning: (m) => process.stderr.write(`${m}\n`) });
const { uws } = binding;
const packr = new Packr({ useRecords: false, variableMapSize: true, mapsAsObjects: true, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

/**
 * RELAY_MODE=corked: the reference of what corking buys. Answers and command frames are queued
 * and written after the uWS callback returns (setImmediate), each socket corked once: uWS v20.30
 * cannot cork a socket while another is corked, so a write made inside another socket's callback
 * goes out as one syscall per piece (status line, each header, body).
 */
const corked = process.env.RELAY_MODE === 'corked';
const outbox: Array<() => void> = [];
function later(write: () => void): void {
  if (!corked) return write();
  if (outbox.length === 0) setImmediate(flush);
  outbox.push(write);
}
function flush(): void {
  for (const write of outbox.splice(0)) write();
}

const hubs = new Map<string, WebSocket<HubData>>();
const pending = new Map<number, Pending>();
let nextId = 0;
const welcome = packr.pack({ t: 2, v: 1, ep: 1, hb: 30_000, idle: 75_000, max: 16_384, ts: Date.now(), s: 0, dl: {} });

function answer(res: HttpResponse, status: string, body: string): void {
  res.cork(() => {
    res.writeStatus(status).writeHeader('content-type', 'application/json').end(body);
  });
}

const app = uws.App();

app.get('/bare', (res) => {
  res.writeHeader('content-type', 'application/json').end('{"ok":true}');
});

app.post('/v1/hubs/:hubId/devices/:deviceId/commands', (res, req) => {
  const hubId = req.getParameter(0);
  const deviceId = req.getParameter(1);
  const p: Pending = { res, aborted: false };
  res.onAborted(() => {
    p.aborted = true;
  });
  let body: Buffer | null = null;
  res.onData((chunk, isLast) => {
    const part = Buffer.from(new Uint8Array(chunk));
    body = body === null ? part : Buffer.concat([body, part]);
    if (!isLast) return;
    const ws = hubs.get(hubId);
    if (!ws) return answer(res, '409 Conflict', '{"ok":false,"code":"hub_offline"}');
    let set: unknown;
    try {
      set = (JSON.parse(body.toString('utf8')) as { set?: unknown }).set ?? {};
    } catch {
      return answer(res, '400 Bad Request', '{"ok":false,"code":"malformed_frame"}');
    }
    const id = (nextId = (nextId % 0x7fffffff) + 1);
    pending.set(id, p);
    const frame = packr.pack({ t: 7, id, d: deviceId, m: 'set', p: set, to: 5_000 });
    later(() => ws.cork(() => ws.send(frame, true)));
  });
});

app.ws<HubData>('/hub/v1', {
  maxPayloadLength: 64 * 1024,
  maxBackpressure: 256 * 1024,
  idleTimeout: 0,
  upgrade: (res, req, context) => {
    res.upgrade<HubData>(
      { hubId: req.getHeader('x-hub-id'), home: req.getHeader('x-hub-home') },
      req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'),
      context,
    );
  },
  open: (ws) => {
    hubs.set(ws.getUserData().hubId, ws);
  },
  message: (ws, message) => {
    let f: { t?: number; id?: number; r?: unknown; s?: number };
    try {
      f = unpackr.unpack(new Uint8Array(message)) as typeof f;
    } catch {
      return;
    }
    switch (f.t) {
      case 8: {
        const p = pending.get(f.id ?? -1);
        if (!p) return;
        pending.delete(f.id!);
        if (!p.aborted) {
          const body = JSON.stringify({ ok: true, result: f.r });
          later(() => {
            if (!p.aborted) answer(p.res, '200 OK', body);
          });
        }
        return;
      }
      case 1:
        ws.send(welcome, true);
        return;
      case 3:
        ws.send(packr.pack({ t: 3, ts: Date.now() }), true);
        return;
      case 4:
        ws.send(packr.pack({ t: 6, s: f.s }), true);
        app.publish(`h/${ws.getUserData().home}`, message, true);
        return;
      case 5:
      case 9:
        ws.send(packr.pack({ t: 6, s: f.s }), true);
        return;
    }
  },
  close: (ws) => {
    const data = ws.getUserData();
    if (hubs.get(data.hubId) === ws) hubs.delete(data.hubId);
  },
});

app.ws<{ homes: string[] }>('/app/v1', {
  maxPayloadLength: 16 * 1024,
  idleTimeout: 0,
  upgrade: (res, req, context) => {
    const homes = (new URLSearchParams(req.getQuery() ?? '').get('homes') ?? '').split(',').filter((h) => h.length > 0);
    res.upgrade({ homes }, req.getHeader('sec-websocket-key'), req.getHeader('sec-websocket-protocol'), req.getHeader('sec-websocket-extensions'), context);
  },
  open: (ws) => {
    for (const h of ws.getUserData().homes) ws.subscribe(`h/${h}`);
  },
});

// the body a node answers a hub refused by its connect rate (1/s) with, byte for byte
const refusal = JSON.stringify({ ok: false, code: 'busy', num: 303, temporary: true, message: `new hub connections are limited to 1/s on this node: retry later` });
app.ws('/refuse', {
  maxPayloadLength: 1024,
  idleTimeout: 0,
  upgrade: (res) => {
    res.cork(() => {
      res.writeStatus('503 Service Unavailable').writeHeader('content-type', 'application/json').writeHeader('cache-control', 'no-store').writeHeader('retry-after', '1').end(refusal);
    });
  },
});
app.ws('/idle', { maxPayloadLength: 1024, idleTimeout: 0 });
app.ws('/echo', { maxPayloadLength: 1024, idleTimeout: 0, message: (ws, message, isBinary) => void ws.send(message, isBinary) });

app.listen(process.env.HOST ?? '127.0.0.1', Number(process.env.PORT ?? 0), (socket) => {
  if (!socket) {
    process.stderr.write('relay floor: cannot listen\n');
    process.exit(1);
  }
  const port = uws.us_socket_local_port(socket as never);
  process.stdout.write(`${JSON.stringify({ ready: true, port, mode: corked ? 'corked' : 'naive', uws: binding.packageName, native: binding.native })}\n`);
});

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
