import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CloseCode } from '../../proto/errors.js';
import { FrameType } from '../../proto/frames.js';
import { decodeServer, encodeFrame, frames } from '../../load/wire/frames.js';
import { hubAuthHeaderMap, hubCredentials } from '../../src/auth/hub-signature.js';
import { memoryPorts } from '../../src/compose/memory-ports.js';
import { startServer, type RunningServer } from '../../src/compose/server.js';
import { createLogger } from '../../src/log/logger.js';
import { inProcessConfig } from '../helpers/in-process-config.js';
import { upgradeAnswer } from '../helpers/upgrade-answer.js';

/**
 * Forged handshakes do not spend the node's connect rate (TIER_HUB_CONNECT_RATE): an attacker who
 * sent forged signatures at the rate refused every real hub `busy`. Both ways a node decides: before
 * the upgrade (the embedded default's stores answer in the turn) and after it (Redis answers a
 * turn later: the socket opens, then closes with the refusal's code).
 */
const ADMIN = 'forged-handshakes-admin-token-0123';
const SECRET = 'forged-handshakes-hub-secret-01234';
const RATE = 5;
const FORGED = 4 * RATE;

describe.each([
  { decided: 'before the upgrade', inTurn: true },
  { decided: 'after the upgrade', inTurn: false },
])('forged handshakes, decided $decided', ({ inTurn }) => {
  let server: RunningServer;
  let url: string;

  beforeAll(async () => {
    const config = { ...inProcessConfig(ADMIN, 'forged-handshakes-jwt-secret-012345'), hubConnectRatePerSec: RATE };
    const log = createLogger('silent');
    server = await startServer(config, log, async (timers) => {
      const ports = memoryPorts(config, timers, log);
      await ports.registry.create({ hubId: 'fh-1', homeId: 'fh-home', model: undefined, secret: SECRET, enabled: true, createdAt: Date.now() });
      if (!inTurn) {
        const { registry, nonces } = ports;
        const get = registry.get.bind(registry);
        const claim = nonces.claim.bind(nonces);
        const later = <T>(answer: () => Promise<T>) => new Promise<void>((resolve) => setImmediate(resolve)).then(answer);
        Object.assign(registry, { inTurn: false, get: (hubId: string) => later(() => get(hubId)) });
        Object.assign(nonces, { inTurn: false, claim: (key: string, ttlMs: number) => later(() => claim(key, ttlMs)) });
      }
      return ports;
    });
    url = `ws://127.0.0.1:${server.port}/hub/v1`;
  });
  afterAll(async () => {
    await server?.close();
  });

  /** How the node answered a handshake: an HTTP refusal's code, the close code of a socket refused after its upgrade, or 'admitted'. */
  async function answer(secret: string): Promise<string | number> {
    const headers = hubAuthHeaderMap(hubCredentials('fh-1', secret));
    if (inTurn) {
      const r = await upgradeAnswer(url, headers);
      return r === 'open' ? 'admitted' : (r.body as { code: string }).code;
    }
    // after the upgrade: the hello is answered by a welcome once admitted, by a close once refused
    const ws = new WebSocket(url, { headers });
    const outcome = new Promise<string | number>((resolve) => {
      ws.on('unexpected-response', (_req, res) => resolve(`HTTP ${res.statusCode}`));
      ws.on('error', () => {});
      ws.on('close', (code) => resolve(code));
      ws.on('message', (data: Buffer) => decodeServer(data).t === FrameType.welcome && resolve('admitted'));
      ws.on('open', () => ws.send(encodeFrame(frames.hello('boot-fh-1'))));
    });
    const answered = await outcome;
    ws.close();
    return answered;
  }

  it(`refuses ${FORGED} forged handshakes for their signature, never busy, and then admits the real hub at once`, async () => {
    // one after another, as fast as the node answers: a burst of tokens' worth at once is decided
    // (and refunded) only after it has spent them, so it may be refused busy, as any burst past the rate is
    const forged: Array<string | number> = [];
    for (let i = 0; i < FORGED; i++) forged.push(await answer('not-the-hub-secret-000000000000'));
    expect(new Set(forged)).toEqual(new Set([inTurn ? 'bad_signature' : CloseCode.unauthorized]));
    expect(await answer(SECRET)).toBe('admitted');
  });
});
