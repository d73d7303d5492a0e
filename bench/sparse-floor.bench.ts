/**
 * The floor of sparse traffic: what a message costs a process that sleeps between messages, the
 * case of a node whose hubs heartbeat every two minutes (issue 14 target 5: 27 nodes of 18,500
 * hubs each get about 190 frames/s apiece). The relay floor (bare uWS) holds `--sockets` idle
 * WebSockets on `/echo`; this process sends small frames to random ones at each `--rates` rate
 * for `--seconds` and counts the answers. Printed per rate: the floor's CPU per message (user +
 * system, all its threads) and its CPU per second, next to the same with the process idle.
 * Compare with the node's CPU per frame at the same rate (the load tool's figures): what is left
 * of it at low rates is the machine's cost of waking a process, not the node's.
 *
 *   node --import tsx bench/sparse-floor.bench.ts [--sockets 18500] [--rates 200,2000] [--seconds 20] [--json]
 */
import { connect, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { cpuMs } from '../load/harness/index.js';
import { sleep } from '../load/lib/async.js';
import { Pacer } from '../load/loadgen/traffic.js';
import { clientFrame, Opcode } from '../load/wire/ws-framing.js';
import { upgradeKey, upgradeRequest } from '../load/wire/ws-upgrade.js';
import { startRelayFloor } from './lib/floor.js';
import { say } from './lib/fleet-runs.js';
import { printResult, runMain } from './lib/output.js';

const { values: args } = parseArgs({
  options: {
    sockets: { type: 'string', default: '18500' },
    rates: { type: 'string', default: '200,2000' },
    seconds: { type: 'string', default: '20' },
    json: { type: 'boolean', default: false },
  },
});
const SOCKETS = Number(args.sockets);
const RATES = args.rates.split(',').map(Number);
const SECONDS = Number(args.seconds);

/** A heartbeat's size: `{t: 6, ts: null}` in msgpack. */
const PAYLOAD = Uint8Array.from([0x82, 0xa1, 0x74, 0x06, 0xa2, 0x74, 0x73, 0xc0, 0xc0]);
/** The frame sent, built once: the bench measures the floor's CPU, not frame building. */
const FRAME = clientFrame(Opcode.binary, PAYLOAD);
/** What the floor answers: the payload in an unmasked frame. */
const ANSWER_BYTES = 2 + PAYLOAD.length;

interface Row {
  rate: number;
  sent: number;
  answered: number;
  cpuMsPerSec: number;
  cpuUsPerMessage: number | null;
}

async function open(port: number, n: number, onBytes: (n: number) => void): Promise<Socket[]> {
  const request = upgradeRequest(`127.0.0.1:${port}`, '/echo', upgradeKey(), {});
  const sockets: Socket[] = [];
  let upgraded = 0;
  for (let i = 0; i < n; i++) {
    const s = connect(port, '127.0.0.1');
    let isOpen = false;
    s.on('connect', () => s.write(request));
    s.on('data', (d: Buffer) => {
      if (isOpen) onBytes(d.length);
      else if (d.includes('101 Switching Protocols')) {
        isOpen = true;
        upgraded++;
      }
    });
    s.on('error', () => {});
    sockets.push(s);
    // a few hundred at a time: the listen backlog
    if (i % 250 === 249) while (upgraded < i - 500) await sleep(5);
  }
  while (upgraded < n) await sleep(20);
  return sockets;
}

async function main(): Promise<void> {
  const floor = await startRelayFloor();
  try {
    let received = 0;
    const sockets = await open(floor.port, SOCKETS, (n) => (received += n));
    say(`${sockets.length} sockets open on the relay floor's /echo`);
    await sleep(2_000);
    const rows: Row[] = [];
    for (const rate of [0, ...RATES]) {
      received = 0;
      let sent = 0;
      const cpu0 = cpuMs(floor.pid);
      // 10-ms ticks, each sending what the rate owes by now: a late tick catches up
      const pace = new Pacer(rate / 1000, performance.now());
      const tick = setInterval(() => {
        for (let due = pace.due(performance.now()); due > 0; due--, sent++) sockets[Math.floor(Math.random() * sockets.length)]!.write(FRAME);
      }, 10);
      await sleep(SECONDS * 1_000);
      clearInterval(tick);
      await sleep(500);
      const cpu = cpuMs(floor.pid) - cpu0;
      const answered = Math.floor(received / ANSWER_BYTES);
      rows.push({ rate, sent, answered, cpuMsPerSec: cpu / (SECONDS + 0.5), cpuUsPerMessage: sent > 0 ? (cpu * 1000) / sent : null });
      say(`rate ${rate}/s: sent ${sent}, answered ${answered}, floor CPU ${(cpu / (SECONDS + 0.5)).toFixed(1)} ms/s`);
    }
    for (const s of sockets) s.destroy();
    const idle = rows[0]!.cpuMsPerSec;
    const lines = [`relay floor (bare uWS), ${SOCKETS} idle sockets, small frames to random ones, ${SECONDS} s per rate`, '', 'rate/s   sent     answered  CPU ms/s  CPU µs per message  of it above idle'];
    for (const r of rows.slice(1)) {
      const above = r.sent > 0 ? ((r.cpuMsPerSec - idle) * 1000 * (SECONDS + 0.5)) / r.sent : 0;
      lines.push(`${String(r.rate).padEnd(9)}${String(r.sent).padEnd(9)}${String(r.answered).padEnd(10)}${r.cpuMsPerSec.toFixed(1).padEnd(10)}${(r.cpuUsPerMessage ?? 0).toFixed(0).padEnd(20)}${above.toFixed(0)}`);
    }
    lines.push(`idle: ${idle.toFixed(1)} ms/s`);
    printResult(args.json, lines.join('\n'), { sockets: SOCKETS, seconds: SECONDS, idleCpuMsPerSec: idle, rows: rows.slice(1) });
  } finally {
    await floor.stop();
  }
}

runMain('sparse-floor', main);
