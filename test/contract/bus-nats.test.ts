import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BusUnavailableError, NoRespondersError, RequestCutError } from '../../src/ports/bus/bus.js';
import { NatsBus } from '../../src/ports/bus/bus-nats.js';
import { TierError } from '../../src/errors.js';
import { freePort, startNats, uniquePrefix, type Backend } from '../../load/harness/index.js';
import { makeNatsOperator, makeTestPki } from '../helpers/test-pki.js';

/** What NatsBus promises beyond the Bus contract: reconnecting forever, status for readiness, closing. */

/** Ceiling of a wait for something the test caused; below the test timeout only to name what is missing. */
const WITHIN_MS = 20_000;
/** A request timeout beyond the test's (30 s): a request that settles did not wait for it. */
const BEYOND_TEST_MS = 600_000;
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

let nats: Backend;
beforeAll(async () => {
  nats = await startNats();
});
afterAll(async () => {
  await nats?.stop();
});

const opened: NatsBus[] = [];
afterEach(async () => {
  if (!nats.running) await nats.restart();
  await Promise.all(opened.splice(0).map((b) => b.close()));
});

/** A logger whose lines the test can read. */
function capture(): { log: pino.Logger; messages: () => string[] } {
  const lines: Array<{ msg: string }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l) as { msg: string });
      cb();
    },
  });
  return { log: pino({ level: 'debug' }, sink), messages: () => lines.map((l) => l.msg) };
}

async function bus(log = capture().log): Promise<NatsBus> {
  const b = await NatsBus.connect(nats.url, { name: 'test', log, reconnectTimeWaitMs: 50 });
  opened.push(b);
  return b;
}

async function until(what: string, cond: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WITHIN_MS;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`not within ${WITHIN_MS} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** True when a request on `subject` is answered `expected`; false while nobody subscribes there yet. */
async function answers(b: NatsBus, subject: string, expected: string): Promise<boolean> {
  try {
    return dec(await b.request(subject, enc('x'), 1_000)) === expected;
  } catch (err) {
    if (err instanceof NoRespondersError) return false;
    throw err;
  }
}

describe('NatsBus', () => {
  it('reports its status, reconnects after a server restart and keeps its subscriptions', async () => {
    const { log, messages } = capture();
    const b = await bus(log);
    const p = uniquePrefix().slice(0, -1);
    b.subscribe(`${p}.echo`, (m) => void m.respond(enc(`re:${dec(m.data)}`)));
    await b.flush();
    expect(b.connected).toBe(true);
    expect(b.status()).toMatchObject({ state: 'connected', server: `127.0.0.1:${nats.port}`, reconnects: 0 });
    const told: number[] = [];
    b.onReconnect((downSince) => told.push(downSince));

    await nats.kill();
    await until('the bus notices', () => !b.connected);
    expect(b.status().state).toBe('reconnecting');
    const down = b.status().since;

    await nats.restart();
    await until('the bus is back', () => b.connected);
    expect(b.status()).toMatchObject({ state: 'connected', reconnects: 1 });
    // BusLink: told once, with when the outage began (fleet notices since then are sent again)
    expect(told).toEqual([down]);
    // the subscription was made again on the new server: requests reach it
    await until('the responder is registered again', () => answers(b, `${p}.echo`, 're:x'));
    expect(messages()).toEqual(expect.arrayContaining(['nats connected', 'nats disconnected; reconnecting', 'nats reconnected']));
  });

  it('leaves a hung server after two pings without an answer: requests then fail at once, and it is back after the server is', async () => {
    const b = await NatsBus.connect(nats.url, { name: 'test', log: capture().log, reconnectTimeWaitMs: 50, pingIntervalMs: 200 });
    opened.push(b);
    const p = uniquePrefix().slice(0, -1);
    b.subscribe(`${p}.echo`, (m) => void m.respond(enc('re')));
    await b.flush();
    nats.pause(); // SIGSTOP: the socket stays open, nothing is answered
    try {
      await until('the bus leaves the hung server', () => !b.connected);
      await expect(b.request(`${p}.echo`, enc('x'), BEYOND_TEST_MS)).rejects.toBeInstanceOf(BusUnavailableError);
    } finally {
      nats.resume();
    }
    await until('the bus is back', () => b.connected);
    await until('the responder answers again', () => answers(b, `${p}.echo`, 're'));
  });

  it('a flush to a hung server the client still counts as connected fails unavailable after 2 s, not at its stale check', async () => {
    // pings far apart: the client keeps the hung connection for the whole test
    const b = await NatsBus.connect(nats.url, { name: 'test', log: capture().log, reconnectTimeWaitMs: 50, pingIntervalMs: BEYOND_TEST_MS });
    opened.push(b);
    await b.flush();
    nats.pause();
    try {
      // SIGSTOP lands a moment later: the server may still answer a flush sent at once
      await until('the server is stopped', () => readFileSync(`/proc/${nats.pid}/stat`, 'utf8').split(') ')[1]?.startsWith('T') === true);
      const flushed = b.flush();
      await expect(flushed).rejects.toMatchObject({ code: 'unavailable', temporary: true });
      expect(b.connected).toBe(true);
    } finally {
      nats.resume();
    }
    await b.flush();
  });

  it('a flush whose answer came during a stall of the event loop longer than its timeout resolves', async () => {
    const b = await bus(capture().log);
    await b.flush();
    const flushed = b.flush();
    // the PING goes out; then the loop stalls past the 2 s while the server's answer waits in the socket
    await new Promise((r) => setImmediate(r));
    const until = Date.now() + 2_300;
    while (Date.now() < until) {
      // a stalled event loop (a long GC, a blocking call)
    }
    await expect(flushed).resolves.toBeUndefined();
  });

  it('drops and counts what is published while disconnected; publishing works again after the reconnect', async () => {
    const { log, messages } = capture();
    const b = await bus(log);
    const p = uniquePrefix().slice(0, -1);
    const got: string[] = [];
    b.subscribe(`${p}.>`, (m) => void got.push(dec(m.data)));
    await b.flush();
    b.publish(`${p}.a`, enc('before'));
    await until('the first message arrived', () => got.length === 1);

    await nats.kill();
    await until('the bus notices', () => !b.connected);
    for (let i = 0; i < 5; i++) expect(() => b.publish(`${p}.a`, enc(`lost${i}`))).not.toThrow();
    expect(b.status().dropped).toBe(5);
    // a request cannot be delivered now: it fails at once, not after its timeout (which is beyond
    // the test's, and the server comes back only after this)
    // (BusUnavailableError: how the node's commands know to try a session held here, src/actors/local-commands.ts)
    const refused = b.request(`${p}.a`, enc('?'), BEYOND_TEST_MS);
    await expect(refused).rejects.toMatchObject({ code: 'unavailable', temporary: true });
    await expect(refused).rejects.toBeInstanceOf(BusUnavailableError);
    await expect(b.flush()).rejects.toMatchObject({ code: 'unavailable' });

    await nats.restart();
    await until('reconnected', () => b.connected);
    b.publish(`${p}.a`, enc('after'));
    await until('the message after the reconnect arrived', () => got.includes('after'));
    expect(got).toEqual(['before', 'after']);
    expect(b.status().dropped).toBe(6); // and the request
    expect(messages().filter((m) => m === 'nats disconnected: dropping messages until it is back')).toHaveLength(1);
  });

  it('a second client sees no responders at once for a subject nobody serves', async () => {
    const a = await bus();
    // the timeout is beyond the test's: only the server's no-responders notice can settle it
    await expect(a.request(`${uniquePrefix().slice(0, -1)}.none`, enc(''), BEYOND_TEST_MS)).rejects.toBeInstanceOf(NoRespondersError);
  });

  it('after close: status closed, publish and respond are dropped, subscribe and request fail with draining', async () => {
    const b = await bus();
    const p = uniquePrefix().slice(0, -1);
    let later: ((data: Uint8Array) => boolean) | undefined;
    b.subscribe(`${p}.r`, (m) => {
      later = (d) => m.respond(d);
    });
    await b.flush();
    await expect(b.request(`${p}.r`, enc(''), 100)).rejects.toThrow();
    await b.close();
    await b.close(); // twice is harmless
    expect(b.connected).toBe(false);
    expect(b.status().state).toBe('closed');
    expect(() => b.publish(`${p}.x`, enc(''))).not.toThrow();
    expect(later?.(enc('too late'))).toBe(false);
    expect(() => b.subscribe(`${p}.y`, () => {})).toThrow(TierError);
    await expect(b.request(`${p}.r`, enc(''), 100)).rejects.toMatchObject({ code: 'draining' });
    await expect(b.flush()).resolves.toBeUndefined();
  });

  it('a close waits for the answers of requests already sent; one still unanswered past drainTimeoutMs is cut with an outcome-unknown code, never draining (review "commands")', async () => {
    const responder = await bus();
    const p = uniquePrefix().slice(0, -1);
    responder.subscribe(`${p}.slow`, (m) => void setTimeout(() => m.respond(enc('ran')), 300));
    responder.subscribe(`${p}.never`, () => {});
    await responder.flush();
    const waits = await bus();
    const answered = waits.request(`${p}.slow`, enc(''), BEYOND_TEST_MS);
    await waits.flush();
    const closed = waits.close();
    // refused at once while the close waits: nothing is sent
    await expect(waits.request(`${p}.slow`, enc(''), BEYOND_TEST_MS)).rejects.toMatchObject({ code: 'draining' });
    expect(dec(await answered)).toBe('ran');
    await closed;
    const cuts = await NatsBus.connect(nats.url, { name: 'test', log: capture().log, drainTimeoutMs: 200 });
    opened.push(cuts);
    const cut = cuts.request(`${p}.never`, enc(''), BEYOND_TEST_MS);
    await cuts.flush();
    void cuts.close();
    await expect(cut).rejects.toBeInstanceOf(RequestCutError);
    await expect(cut).rejects.toMatchObject({ code: 'command_timeout' });
  });

  it('a tls:// server that offers no TLS is refused: the credentials never go out in plaintext', async () => {
    const plain = nats.url.replace('nats://', 'tls://u:secret@');
    await expect(NatsBus.connect(plain, { name: 'test', log: capture().log, connectTimeoutMs: 2_000 })).rejects.toThrow(/does not support 'tls' \(NATS_URL names tls:\/\/: this server has no TLS/);
  });

  it('reconnects once the server takes its credentials again after refusing them (a rotation on the server)', { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bus-auth-'));
    const conf = join(dir, 'nats.conf');
    const users = (pass: string) => writeFileSync(conf, `authorization { user: hubtier, password: "${pass}" }\n`);
    users('first-pass');
    const server = await startNats({ config: conf });
    try {
      const b = await NatsBus.connect(server.url.replace('nats://', 'nats://hubtier:first-pass@'), { name: 'test', log: capture().log, reconnectTimeWaitMs: 50 });
      opened.push(b);
      users('rotated-pass');
      process.kill(server.pid, 'SIGHUP');
      await until('the server to refuse the bus', () => b.status().state !== 'connected');
      // refused over and over meanwhile: the client once gave up after two
      await new Promise((r) => setTimeout(r, 1_000));
      users('first-pass');
      process.kill(server.pid, 'SIGHUP');
      await until('the bus to be back', () => b.status().state === 'connected');
      expect(await b.rtt()).toBeGreaterThanOrEqual(0);
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('NATS_TLS_* files: a server of a private CA that asks for a client certificate (mTLS) takes the node with them, refuses it without', { timeout: 60_000 }, async () => {
    const pki = makeTestPki();
    const conf = join(pki.dir, 'nats.conf');
    writeFileSync(conf, `tls { cert_file: "${pki.serverCert}", key_file: "${pki.serverKey}", ca_file: "${pki.ca}", verify: true }\n`);
    const server = await startNats({ config: conf });
    try {
      const url = server.url.replace('nats://', 'tls://');
      const b = await NatsBus.connect(url, { name: 'test', log: capture().log, tls: { caFile: pki.ca, certFile: pki.clientCert, keyFile: pki.clientKey } });
      opened.push(b);
      expect(await b.rtt()).toBeGreaterThanOrEqual(0);
      await expect(NatsBus.connect(url, { name: 'test', log: capture().log, connectTimeoutMs: 2_000, tls: { caFile: pki.ca } })).rejects.toBeInstanceOf(TierError);
      // the private CA is not trusted without its file, which the error names
      await expect(NatsBus.connect(url, { name: 'test', log: capture().log, connectTimeoutMs: 2_000, tls: { certFile: pki.clientCert, keyFile: pki.clientKey } })).rejects.toThrow(/certificate.*not trusted: give its CA in NATS_TLS_CA_FILE/i);
    } finally {
      await server.stop();
      rmSync(pki.dir, { recursive: true, force: true });
    }
  });

  it('NATS_CREDS_FILE: an operator-mode server takes the node with its .creds file, refuses it without, naming the setting', { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bus-creds-'));
    const { config, creds } = makeNatsOperator(dir);
    const server = await startNats({ config });
    try {
      const b = await NatsBus.connect(server.url, { name: 'test', log: capture().log, credsFile: creds });
      opened.push(b);
      expect(await b.rtt()).toBeGreaterThanOrEqual(0);
      await expect(NatsBus.connect(server.url, { name: 'test', log: capture().log, connectTimeoutMs: 2_000 })).rejects.toThrow(/Authorization Violation.*NATS_CREDS_FILE/);
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('fails start-up when no server answers', async () => {
    const port = await freePort();
    await expect(
      NatsBus.connect(`nats://127.0.0.1:${port}`, { name: 'test', log: capture().log, connectTimeoutMs: 1_000 }),
    ).rejects.toBeInstanceOf(TierError);
  });
});
