/**
 * A flood of idle TCP connections from one address, more than the node has open files (red team:
 * 2,600 held against a 2,000-file node). Out of files, uSockets retried accept() on the readable
 * listen socket in a tight loop: a core spent, /healthz unanswered (the pod restarted), no hub could
 * connect. A real node process under a low open-file limit; the flood reconnects what the node closes:
 * - the public port stops listening (log, `tier_listen_paused`, readiness `listen_paused`), the main
 *   thread uses, and waits in the run queue for, less than half a core over a window of the flood
 *   (the machine is shared: CPU time alone cannot tell a spin from a busy machine), /healthz answers;
 * - once the flood ends the port listens again and a hub connects.
 */
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { threadCpuMs } from '../../load/harness/index.js';
import { HubClient } from '../../load/wire/hub-client.js';
import { api, fds, fileLimit, logLine, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

/** `count` idle connections to `port`, each opened again shortly after it closes, until `stop`. */
function flood(port: number, count: number): { stop: () => void } {
  const open = new Set<Socket>();
  let stopped = false;
  const one = () => {
    if (stopped) return;
    const s = connect(port, '127.0.0.1');
    open.add(s);
    // an unfinished request: the node holds the connection until its HTTP idle timeout
    s.on('connect', () => s.write('GET / HTTP/1.1\r\nHost: x\r\n'));
    s.on('error', () => {});
    s.on('close', () => {
      open.delete(s);
      setTimeout(one, 100);
    });
  };
  for (let i = 0; i < count; i++) one();
  return {
    stop() {
      stopped = true;
      for (const s of open) s.destroy();
    },
  };
}

/** CPU the node's main thread used, in ms. */
const mainCpuMs = (pid: number): number => threadCpuMs(pid).get('main') ?? 0;

/**
 * Time the node's main thread wanted a core, in ms: on one plus waiting in the run queue
 * (/proc/<pid>/task/<pid>/schedstat, ns). A spinning thread wants one all the time however busy the
 * machine is, when its CPU time alone shrinks with the other processes' load.
 */
function mainRunnableMs(pid: number): number {
  const [run, wait] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ').map(Number);
  return ((run ?? 0) + (wait ?? 0)) / 1e6;
}

describe('idle connections past the open-file limit (real server process)', () => {
  let server: ServerProcess | undefined;
  let attack: { stop: () => void } | undefined;
  const hubs: HubClient[] = [];

  afterEach(async () => {
    attack?.stop();
    await Promise.all(hubs.splice(0).map((h) => h.terminate()));
    if (server) expect(await server.stop()).toBe(0);
    server = undefined;
  });

  it('closes the public port while out of files: the loop idles, /healthz answers, readiness says why; listens again after', async ({ signal }) => {
    const FILES = 300;
    server = await startServerProcess({ TIER_MAX_HUB_SESSIONS: '20' }, fileLimit(FILES));
    const node = server;
    const created = await api(node.httpUrl, 'POST', '/v1/admin/hubs', node.adminToken, { hubId: 'emfile-hub', homeId: 'emfile-home' });
    expect(created.status).toBe(201);

    attack = flood(node.port, FILES + 200);
    while (fds(node.pid) < FILES - 1) await sleep(20);
    // a window of the flood, past one probe of the open files: CPU used against the window's length
    await sleep(1_500);
    const cpu0 = mainCpuMs(node.pid);
    const runnable0 = mainRunnableMs(node.pid);
    const t0 = performance.now();
    await sleep(3_000);
    const window = performance.now() - t0;
    const cpuShare = (mainCpuMs(node.pid) - cpu0) / window;
    const runnableShare = (mainRunnableMs(node.pid) - runnable0) / window;
    expect(cpuShare).toBeLessThan(0.5);
    expect(runnableShare).toBeLessThan(0.5);

    expect(await logLine(node, signal, (l) => l.msg === 'out of open files: the public port stops listening until files are free')).toBeDefined();
    expect((await fetch(`${node.adminUrl}/healthz`)).status).toBe(200);
    const ready = await api(node.adminUrl, 'GET', '/readyz', undefined);
    expect(ready).toMatchObject({ status: 503, body: { ready: false, reasons: ['listen_paused'] } });
    const metrics = await (await fetch(`${node.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(/^tier_listen_paused 1$/m);
    expect(metrics).toMatch(/^tier_listen_pauses_total [1-9]/m);

    attack.stop();
    // the flood's connections close, files are free: the port listens again and a hub connects
    while ((await api(node.adminUrl, 'GET', '/readyz', undefined)).status !== 200) await sleep(100);
    expect(await logLine(node, signal, (l) => l.msg === 'open files free again: the public port listens again')).toBeDefined();
    const hub = new HubClient({ url: node.wsUrl, hubId: 'emfile-hub', secret: created.body.secret });
    hubs.push(hub);
    await hub.connect();
    expect(await hub.report({ d0: { on: true } })).toBeGreaterThan(0);
  });
});
