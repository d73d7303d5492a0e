import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandFrame } from '../../proto/frames.js';
import { HubClient } from '../../load/wire/hub-client.js';
import { api, startServerProcess, type ServerProcess } from '../helpers/server-process.js';

const L = `[${Array.from({ length: 100 }, (_, i) => i).join(',')}]`;
/** about 92,500 steps each (near the bound of one expression), true and false */
const HEAVY_TRUE = `${L}.all(a, ${L}.all(b, a != b + 1000))`;
const HEAVY_FALSE = `${L}.exists(a, ${L}.exists(b, a == b + 1000))`;

/** A series' value in a /metrics text (0 when absent). */
function metric(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

/**
 * One home's costly rules against another home's simple one, on a real node (one rule worker
 * thread on this machine): while home X's hub reports without pause to 20 rules of 10 conditions
 * near the bound each, X's events are cut to its budgets (one event's steps, the home's worker
 * time per second) and counted, and home Y's button still reaches its lamp.
 */
describe("one home's costly rules do not hold up another home's (real server process)", () => {
  let server: ServerProcess;
  const clients: HubClient[] = [];

  beforeAll(async () => {
    server = await startServerProcess();
  });

  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.terminate()));
    expect(await server.stop()).toBe(0);
  });

  async function hubOnline(hubId: string, homeId: string, devices: Array<{ d: string; k: string }>): Promise<HubClient> {
    const res = await api(server.httpUrl, 'POST', '/v1/admin/hubs', server.adminToken, { hubId, homeId });
    expect(res.status).toBe(201);
    const c = new HubClient({ url: server.wsUrl, hubId, secret: res.body.secret });
    clients.push(c);
    await c.connect();
    await c.devices({ f: true, j: devices });
    return c;
  }

  /** X's rules not evaluated for its budgets so far */
  const xDrops = async () => {
    const text = await (await fetch(`${server.adminUrl}/metrics`)).text();
    return metric(text, 'tier_rule_dropped_total{reason="event_budget"}') + metric(text, 'tier_rule_dropped_total{reason="home_cpu"}');
  };

  async function dropsPast(n: number, signal: AbortSignal): Promise<number> {
    for (;;) {
      const d = await xDrops();
      if (d > n) return d;
      if (signal.aborted) throw new Error(`home X's drops stayed at ${d}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it("home Y's button fires its lamp while home X floods, and X's drops are counted before and after", async ({ signal }) => {
    const hx = await hubOnline('fair-x', 'fair-home-x', [{ d: 's', k: 'sensor' }]);
    const hy = await hubOnline('fair-y', 'fair-home-y', [
      { d: 'button', k: 'button' },
      { d: 'lamp', k: 'light' },
    ]);
    const y = await api(server.httpUrl, 'POST', '/v1/homes/fair-home-y/rules', server.adminToken, {
      name: 'Y lamp',
      triggers: [{ type: 'event', hub: 'fair-y', device: 'button', event: 'press' }],
      actions: [{ type: 'command', hub: 'fair-y', device: 'lamp', method: 'toggle' }],
    });
    expect(y.status).toBe(201);
    for (let i = 0; i < 20; i++) {
      const r = await api(server.httpUrl, 'POST', '/v1/homes/fair-home-x/rules', server.adminToken, {
        name: `heavy ${i}`,
        triggers: [{ type: 'state', attr: 'x' }],
        conditions: [...Array<string>(9).fill(HEAVY_TRUE), HEAVY_FALSE],
        actions: [{ type: 'notify', title: 't', body: 'b' }],
      });
      expect(r.status).toBe(201);
    }
    // ten such conditions and a template of one are over one event's budget: refused at save
    const over = await api(server.httpUrl, 'POST', '/v1/homes/fair-home-x/rules', server.adminToken, {
      name: 'over',
      triggers: [{ type: 'state', attr: 'x' }],
      conditions: Array<string>(10).fill(HEAVY_TRUE),
      actions: [{ type: 'notify', title: 't', body: `{{ ${HEAVY_TRUE} }}` }],
    });
    expect(over.status).toBe(422);
    expect(over.body).toMatchObject({ code: 'limit_exceeded', field: 'conditions' });

    const lamp: CommandFrame[] = [];
    let commanded: (() => void) | null = null;
    hy.onCommand((cmd) => {
      lamp.push(cmd);
      commanded?.();
      return { ok: true };
    });

    let flooding = true;
    const flood = (async () => {
      // reports paced a little, so the test's own process leaves the node some of the machine
      for (let x = 1; flooding; x++) {
        // a closed socket (the node stopping under a failed test) ends the flood
        await hx.report({ s: { x } }).catch(() => (flooding = false));
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    try {
      await dropsPast(0, signal);
      const arrived = new Promise<void>((r) => (commanded = r));
      await hy.event('button', 'press');
      await arrived;
      // X was cut before the press and is cut after the command arrived (below); a command quicker
      // than X's next drop sees none between, which says nothing of fairness (it failed CI once so)
      const atCommand = await xDrops();
      // X is still flooding, and still cut, after Y's command arrived
      await dropsPast(atCommand, signal);
      expect(lamp).toMatchObject([{ d: 'lamp', m: 'toggle' }]);
    } finally {
      flooding = false;
      await flood;
    }
    const rules = (await api(server.httpUrl, 'GET', '/v1/homes/fair-home-x/rules', server.adminToken)).body.rules as Array<{ status: { stats: { lastError?: { message: string } } } }>;
    expect(rules.some((r) => /steps one event may use|ms of worker time per second/.test(r.status.stats.lastError?.message ?? ''))).toBe(true);
  });
});
