/**
 * `GET /debug/backup` on a real uWS app in this process: one backup at a time (a second is answered
 * `409 busy` while the first is written), the slot given back when a backup ends, written or failed,
 * and a failed one cuts the connection rather than end a part that could be taken for the whole.
 */
import { get } from 'node:http';
import type { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { backupPage } from '../../src/admin/backup-route.js';
import { AdminTokens } from '../../src/auth/admin-tokens.js';
import { loadUws, type us_listen_socket } from '../../src/transport/uws.js';
import { silentLog } from './rules-fixtures.js';

const ADMIN = 'backup-route-admin-token-0123456789';
const binding = loadUws({ requireNative: false });

/** Each backup writes its first line, then waits until the test ends it (or fails it). */
const running: Array<{ end(): void; fail(): void }> = [];
const write = (out: Writable): Promise<Record<string, number>> =>
  new Promise((resolve, reject) => {
    out.write('{"db":"shadows"}\n');
    running.push({
      end: () => out.end('{"end":true}\n', () => resolve({ shadows: 1 })),
      fail: () => reject(new Error('store closed')),
    });
  });

let base: string;
let socket: us_listen_socket;
beforeAll(async () => {
  const app = binding.uws.App();
  backupPage(write)(app, { adminToken: new AdminTokens(ADMIN), log: silentLog, maxBodyBytes: 65_536 });
  socket = await new Promise<us_listen_socket>((resolve, reject) => app.listen('127.0.0.1', 0, (s) => (s ? resolve(s) : reject(new Error('listen failed')))));
  base = `http://127.0.0.1:${binding.uws.us_socket_local_port(socket as never)}`;
});
afterAll(() => binding.uws.us_listen_socket_close(socket));

/** The answer's status, and its body once the response ends (or `cut` when the connection is). */
const backup = (): { status: Promise<number>; body: Promise<string> } => {
  let status!: (s: number) => void;
  const statusP = new Promise<number>((r) => (status = r));
  const body = new Promise<string>((resolve) => {
    get(`${base}/debug/backup`, { headers: { authorization: `Bearer ${ADMIN}` } }, (res) => {
      status(res.statusCode ?? 0);
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c)).on('end', () => resolve(text)).on('error', () => resolve('cut')).on('aborted', () => resolve('cut'));
    }).on('error', () => resolve('cut'));
  });
  return { status: statusP, body };
};
const until = async (n: number) => {
  while (running.length < n) await new Promise((r) => setTimeout(r, 5));
};

describe('GET /debug/backup: one at a time', () => {
  it('answers a second backup 409 busy while the first is written, and takes one again once it ended', async () => {
    const first = backup();
    expect(await first.status).toBe(200);
    await until(1);
    const second = backup();
    expect(await second.status).toBe(409);
    expect(JSON.parse(await second.body)).toMatchObject({ ok: false, code: 'busy' });
    running[0]!.end();
    expect(await first.body).toBe('{"db":"shadows"}\n{"end":true}\n');

    const third = backup();
    expect(await third.status).toBe(200);
    await until(2);
    running[1]!.end();
    expect(await third.body).toBe('{"db":"shadows"}\n{"end":true}\n');
  });

  it('a backup that fails cuts its connection and gives the slot back', async () => {
    const failing = backup();
    expect(await failing.status).toBe(200);
    await until(3);
    running[2]!.fail();
    expect(await failing.body).toBe('cut');
    const next = backup();
    expect(await next.status).toBe(200);
    await until(4);
    running[3]!.end();
    expect(await next.body).toBe('{"db":"shadows"}\n{"end":true}\n');
  });
});
