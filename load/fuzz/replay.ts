import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import WebSocket from 'ws';
import { AdminClient } from '../wire/admin.js';
import { HubConn } from './hub-conn.js';
import { BARRIER } from './hub-frames.js';
import { MpMap, fromHex, pack, unpackStrict } from './msgpack.js';
import type { InputRecord } from './report.js';
import { Target, killOnExit, type TargetOptions } from './target.js';

/**
 * `--replay FILE`: sends the inputs of a crash or violation file again, in order, to a fresh node
 * (or `--url`), and prints what each one got back and whether the node died. Hub frames go to a
 * freshly provisioned hub after its hello; app messages to a fresh socket; HTTP requests as
 * recorded (ids of the original run, such as its responder hub, do not exist in the fresh node).
 */
export async function replay(file: string, targetOpts: TargetOptions, print: (line: string) => void): Promise<{ crashed: boolean }> {
  const data = JSON.parse(readFileSync(file, 'utf8')) as { inputs?: InputRecord[]; inFlight?: InputRecord[]; kind?: string; invariant?: string; detail?: string };
  if (data.kind === 'violation') print(`violation ${data.invariant}: ${data.detail}`);
  // a crash: first the inputs in flight when it died, alone; then, if the node survives them, everything sent before
  if (data.kind === 'crash' && data.inFlight?.length) {
    print(`the ${data.inFlight.length} input(s) in flight when the node died:`);
    const first = await replayInputs(data.inFlight, targetOpts, print);
    if (first.crashed || !data.inputs?.length) return first;
    print(`the node survived them; all ${data.inputs.length} inputs sent before the crash, in order:`);
  }
  return replayInputs(data.inputs ?? [], targetOpts, print);
}

async function replayInputs(inputs: InputRecord[], targetOpts: TargetOptions, print: (line: string) => void): Promise<{ crashed: boolean }> {
  const target = await Target.start(targetOpts);
  killOnExit(target);
  print(`node: ${target.httpUrl}${target.pid !== undefined ? ` (pid ${target.pid})` : ''}`);
  const hubs = new Map<number, { id: string; secret: string; conn: HubConn | null }>();
  const admin = new AdminClient(target.httpUrl, target.adminToken);
  const home = 'fz-replay-home';
  const userToken = await admin.appToken('replay', [home]);
  let crashed = false;
  for (let i = 0; i < inputs.length && !crashed; i++) {
    const input = inputs[i]!;
    let outcome: string;
    try {
      if (input.surface === 'hub') outcome = await replayHub(input, hubs, target, admin, home);
      else if (input.surface === 'app') outcome = await replayApp(input, target, userToken);
      else outcome = await replayHttp(input, target, userToken);
    } catch (err) {
      outcome = `error: ${(err as Error).message}`;
    }
    if (target.spawned) {
      await Promise.race([target.whenExited(), new Promise((r) => setTimeout(r, 300))]);
      crashed = !target.alive;
    } else crashed = (await target.healthz(3_000)) === false;
    print(`#${i + 1} ${input.surface} ${input.klass}: ${outcome}${crashed ? '  <- THE NODE DIED' : ''}`);
  }
  if (crashed) print(`the node died; its last lines:\n${target.lastLines().slice(-15).join('\n')}`);
  else print('the node survived every input');
  for (const h of hubs.values()) await h.conn?.close();
  if (target.spawned) await target.stop();
  return { crashed };
}

async function replayHub(
  input: Extract<InputRecord, { surface: 'hub' }>,
  hubs: Map<number, { id: string; secret: string; conn: HubConn | null }>,
  target: Target,
  admin: AdminClient,
  home: string,
): Promise<string> {
  let hub = hubs.get(input.hub);
  if (!hub) {
    const id = `fz-replay-${input.hub}`;
    const done = await admin.provisionHub(id, home);
    hub = { id, secret: 'secret' in done ? done.secret : '(exists already: unknown)', conn: null };
    hubs.set(input.hub, hub);
  }
  if (input.stage === 'upgrade') {
    const opened = await HubConn.open({ url: target.wsUrl, hubId: hub.id, secret: hub.secret, unsigned: true, headers: input.headers ?? {}, query: input.query });
    if (opened.kind === 'open') {
      await opened.conn.close();
      return 'upgrade accepted';
    }
    return opened.kind === 'refused' ? `refused ${opened.status} ${opened.body.slice(0, 200)}` : opened.message;
  }
  if (input.stage === 'pre-hello' || !hub.conn?.open) {
    await hub.conn?.close();
    const opened = await HubConn.open({ url: target.wsUrl, hubId: hub.id, secret: hub.secret });
    if (opened.kind !== 'open') return `could not connect: ${opened.kind === 'refused' ? opened.status : opened.message}`;
    hub.conn = opened.conn;
    if (input.stage === 'pre-hello') {
      hub.conn.send(input.text ?? fromHex(input.hex ?? ''));
      hub.conn.send(pack(new MpMap([['t', 1], ['v', 1], ['b', `replay-${Date.now()}`]])));
      const conn = hub.conn;
      await conn.until(() => conn.inbox.some((m) => m.frame?.t === 2), 5_000);
      return describeInbox(conn, 0);
    }
    hub.conn.send(pack(new MpMap([['t', 1], ['v', 1], ['b', `replay-${Date.now()}`]])));
    const conn = hub.conn;
    await conn.until(() => conn.inbox.some((m) => m.frame?.t === 2), 5_000);
  }
  const conn = hub.conn!;
  const from = conn.inbox.length;
  conn.send(input.text ?? fromHex(input.hex ?? ''));
  conn.send(BARRIER);
  await conn.until(() => conn.inbox.slice(from).some((m) => m.frame?.t === 3), 5_000);
  return describeInbox(conn, from);
}

function describeInbox(conn: HubConn, from: number): string {
  const parts = conn.inbox.slice(from).map((m) => {
    const f = m.frame;
    if (!f) return m.problem ?? '?';
    if (f.t === 6) return `ack ${String(f.s)}`;
    if (f.t === 10) return `error ${String(f.e)}${f.ref !== undefined ? ` ref ${String(f.ref)}` : ''}`;
    if (f.t === 3) return 'heartbeat';
    if (f.t === 2) return 'welcome';
    if (f.t === 12) return `bye ${String(f.e)}`;
    return `t=${f.t}`;
  });
  if (conn.closed) parts.push(`close ${conn.closed.code}`);
  return parts.join(', ') || 'nothing';
}

async function replayApp(input: Extract<InputRecord, { surface: 'app' }>, target: Target, userToken: string): Promise<string> {
  const auth = input.auth;
  const token = auth === 'admin' ? target.adminToken : auth === 'user' ? userToken : typeof auth === 'object' && 'query' in auth ? auth.query : null;
  const params = [input.query ?? '', token !== null ? `token=${encodeURIComponent(token)}` : ''].filter(Boolean).join('&');
  const headers = typeof auth === 'object' && 'header' in auth ? { authorization: auth.header } : {};
  const protocols = typeof auth === 'object' && 'protocol' in auth ? [auth.protocol] : [];
  const ws = new WebSocket(`${target.wsUrl}/app/v1${params ? `?${params}` : ''}`, protocols, { headers, perMessageDeflate: false });
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      ws.terminate();
      resolve('no reply within 5 s');
    }, 5_000);
    ws.on('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      resolve(`upgrade refused ${res.statusCode}`);
      ws.terminate();
    });
    ws.on('open', () => {
      if (input.upgradeOnly) {
        clearTimeout(timer);
        ws.close();
        resolve('upgrade accepted');
        return;
      }
      ws.send(input.text ?? fromHex(input.hex ?? ''), { binary: input.text === undefined });
    });
    ws.on('message', (data, isBinary) => {
      const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer);
      let text: string;
      try {
        text = JSON.stringify(isBinary ? unpackStrict(new Uint8Array(bytes)) : JSON.parse(bytes.toString('utf8')));
      } catch {
        text = bytes.toString('hex');
      }
      if (text.includes('"op":"evt"')) return;
      clearTimeout(timer);
      ws.close();
      resolve(`reply ${text.slice(0, 300)}`);
    });
    ws.on('close', (code) => {
      clearTimeout(timer);
      resolve(`closed ${code}`);
    });
    ws.on('error', (err) => {
      clearTimeout(timer);
      resolve(`error ${err.message}`);
    });
  });
}

function replayHttp(input: Extract<InputRecord, { surface: 'http' }>, target: Target, userToken: string): Promise<string> {
  const headers: Record<string, string> = { ...input.headers };
  if (input.auth === 'admin') headers.authorization = `Bearer ${target.adminToken}`;
  else if (input.auth === 'user') headers.authorization = `Bearer ${userToken}`;
  else if (typeof input.auth === 'object' && 'header' in input.auth) headers.authorization = input.auth.header;
  const body = input.bodyHex !== undefined ? Buffer.from(input.bodyHex, 'hex') : undefined;
  const url = new URL(target.httpUrl);
  return new Promise((resolve) => {
    const r = request({ host: url.hostname, port: url.port, method: input.method, path: input.path, headers, agent: false, timeout: 10_000 }, (res) => {
      if (input.method === 'HEAD') {
        resolve(`${res.statusCode} (HEAD)`);
        r.destroy();
        return;
      }
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve(`${res.statusCode} ${Buffer.concat(chunks).toString('utf8').slice(0, 300)}`));
    });
    r.on('timeout', () => r.destroy(new Error('no answer within 10 s')));
    r.on('error', (err) => resolve(`error ${err.message}`));
    r.end(body);
  });
}
