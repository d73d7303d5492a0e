import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FrameType, type CommandFrame, type ServerToHubFrame } from '../../proto/frames.js';
import { HubClient } from '../../load/wire/hub-client.js';
import { diskPorts } from '../../src/compose/disk-ports.js';
import { startServer, type RunningServer } from '../../src/compose/server.js';
import { loadConfig } from '../../src/config/config.js';
import { createLogger } from '../../src/log/logger.js';
import type { ShadowStore } from '../../src/ports/shadow-store/shadow-store.js';
import { eventually } from '../helpers/eventually.js';
import { api, rulesWarmedUp } from '../helpers/server-process.js';

/**
 * A user's desired change that reaches a hub session whose mailbox is full still reaches the hub
 * once the mailbox drains (it used to wait for the hub's next welcome). A node in this process on
 * the embedded default (LMDB in a temporary DATA_DIR, TIER_MAILBOX_SIZE=4), its HTTP API and hub
 * socket as deployed; the one thing added is a gate on the store's device-list write, which holds
 * the session in that step while the hub's frames fill its mailbox.
 */
const ADMIN = 'desired-overflow-admin-token-0123';

describe('a desired change that finds the hub session\'s mailbox full (embedded default)', () => {
  let server: RunningServer;
  let shadows: ShadowStore;
  let httpUrl: string;
  const dir = mkdtempSync(join(tmpdir(), 'desired-overflow-'));
  let release: () => void = () => {};
  let held: Promise<void> | null = null;

  beforeAll(async () => {
    const { config } = loadConfig({
      PORT: '0',
      ADMIN_PORT: '0',
      HOST: '127.0.0.1',
      ADMIN_TOKEN: ADMIN,
      JWT_SECRET: 'desired-overflow-jwt-secret-0123456789',
      LOG_LEVEL: 'silent',
      DATA_DIR: dir,
      TIER_MAILBOX_SIZE: '4',
      TIER_SECRET_KEY: createHash('sha256').update('desired-overflow').digest('hex'),
    });
    const log = createLogger('silent');
    server = await startServer(config, log, async (timers) => {
      const ports = await diskPorts(config, timers, log);
      shadows = ports.shadows;
      const writeDevices = shadows.writeDevices.bind(shadows);
      shadows.writeDevices = async (...args) => {
        if (held) await held;
        return writeDevices(...args);
      };
      return ports;
    });
    httpUrl = `http://127.0.0.1:${server.port}`;
    await rulesWarmedUp(`http://127.0.0.1:${server.adminPort}`);
  });

  afterAll(async () => {
    release();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the hub gets the set once the mailbox drains', async ({ signal }) => {
    const created = await api(httpUrl, 'POST', '/v1/admin/hubs', ADMIN, { hubId: 'do-1', homeId: 'home-do' });
    expect(created.status).toBe(201);
    const hub = new HubClient({ url: `ws://127.0.0.1:${server.port}`, hubId: 'do-1', secret: created.body.secret as string, heartbeat: false });
    const frames: ServerToHubFrame[] = [];
    hub.on('frame', (f: ServerToHubFrame) => frames.push(f));
    await hub.connect();
    const session = server.sessions.get('do-1');
    expect(session).toBeDefined();

    held = new Promise((r) => (release = r));
    void hub.devices({ f: true, j: [{ d: 'heating', k: 'climate' }] }).catch(() => {});
    for (let i = 0; i < 4; i++) void hub.event('heating', 'tick').catch(() => {});
    await eventually(signal, 'the mailbox full', async () => (session!.queued === 4 ? true : undefined));

    const put = await api(httpUrl, 'PUT', '/v1/hubs/do-1/devices/heating/desired', ADMIN, { desired: { target: 21 } });
    expect(put.status).toBe(200);
    release();
    await eventually(signal, 'the mailbox drained', async () => (session!.idle && session!.queued === 0 ? true : undefined));
    // a barrier: the answer to a heartbeat comes after every frame the session sent before it
    hub.heartbeat();
    await hub.waitFor((f) => f.t === FrameType.heartbeat);
    const sets = frames.filter((f): f is CommandFrame => f.t === FrameType.command && f.m === 'set');
    expect(sets.map((f) => ({ d: f.d, p: f.p }))).toEqual([{ d: 'heating', p: { target: 21 } }]);
    await hub.terminate();
  });
});
