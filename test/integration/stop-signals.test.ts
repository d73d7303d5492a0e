/**
 * Signals a supervisor, a terminal or a neighbour may send a node (review "lifecycle"): SIGHUP and
 * SIGUSR2 drain it as SIGTERM does (they ended it at once, exit 129 and 140, its lock left for an
 * unclean stop); SIGUSR1 opens no debugger (V8's inspector on 127.0.0.1:9229, where a sidecar
 * could run code in the node); a second SIGTERM is said, and a second SIGINT ends a drain at once.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startNode, type NodeProc } from '../../load/harness/index.js';
import { HubClient } from '../../load/wire/hub-client.js';
import { api } from '../helpers/server-process.js';

const dirs: string[] = [];
const nodes: NodeProc[] = [];
const hubs: HubClient[] = [];
afterAll(async () => {
  await Promise.allSettled(hubs.map((h) => h.terminate()));
  await Promise.allSettled(nodes.map((n) => n.kill()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const started = async (): Promise<{ node: NodeProc; dataDir: string }> => {
  const dataDir = mkdtempSync(join(tmpdir(), 'stop-signals-'));
  dirs.push(dataDir);
  const node = await startNode({ measured: false, dataDir, env: { LOG_LEVEL: 'info' } });
  nodes.push(node);
  return { node, dataDir };
};
/** The line of `msg` the node wrote, once it has (its lines so far, then the next ones). */
const logged = async (node: NodeProc, msg: string): Promise<string> => {
  const has = (l: string) => l.includes(`"msg":"${msg}`);
  return node.lines.find(has) ?? (await node.waitLine(has, 10_000));
};
/** Whether anything listens on 127.0.0.1:port. */
const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = createConnection({ host: '127.0.0.1', port }, () => (s.destroy(), resolve(true)));
    s.on('error', () => resolve(false));
  });

describe('stop signals', { timeout: 60_000 }, () => {
  it.each(['SIGHUP', 'SIGUSR2'] as const)('%s drains the node as SIGTERM does: exit 0, its lock gone', async (signal) => {
    const { node, dataDir } = await started();
    node.child.kill(signal);
    expect(await node.exited).toBe(0);
    expect(await logged(node, 'draining')).toContain(`"signal":"${signal}"`);
    expect(await logged(node, 'drain step')).toBeTruthy();
    expect(existsSync(join(dataDir, 'node.lock'))).toBe(false);
  });

  it('SIGUSR1 opens no debugger and is said; the node goes on', async () => {
    const { node } = await started();
    const before = await listening(9229);
    node.child.kill('SIGUSR1');
    await logged(node, 'SIGUSR1 ignored');
    if (!before) expect(await listening(9229)).toBe(false);
    expect(node.lines.join('\n')).not.toContain('Debugger listening');
    expect((await fetch(`${node.adminUrl}/healthz`)).status).toBe(200);
  });

  /** A hub on `node` that never answers the command sent to it: the drain waits for it (up to 5 s), time for a second signal. */
  const heldDrain = async (node: NodeProc): Promise<void> => {
    const res = await api(node.httpUrl, 'POST', '/v1/admin/hubs', node.adminToken, { hubId: 'held', homeId: 'home-held' });
    const hub = new HubClient({ url: node.wsUrl, hubId: 'held', secret: res.body.secret as string, heartbeat: false });
    hubs.push(hub);
    hub.onCommand(() => new Promise(() => {}));
    await hub.connect();
    void api(node.httpUrl, 'POST', '/v1/hubs/held/devices/sw1/commands', node.adminToken, { method: 'toggle', params: {}, timeoutMs: 30_000 }).catch(() => {});
    await new Promise((r) => setTimeout(r, 200));
  };

  it('a second SIGTERM is said and the drain goes on to exit 0; a second SIGINT ends it now, exit 130', async () => {
    const a = await started();
    await heldDrain(a.node);
    a.node.child.kill('SIGTERM');
    await logged(a.node, 'draining'); // two sent at once are one to the kernel
    a.node.child.kill('SIGTERM');
    expect(await a.node.exited).toBe(0);
    await logged(a.node, 'already stopping');
    const b = await started();
    await heldDrain(b.node);
    b.node.child.kill('SIGINT');
    await logged(b.node, 'draining');
    b.node.child.kill('SIGINT');
    expect(await b.node.exited).toBe(130);
    await logged(b.node, 'SIGINT again');
  });
});
