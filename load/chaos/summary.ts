import { table } from '../lib/histogram.js';
import type { AppsReport } from './apps.js';
import type { CommandTally } from './commands.js';
import { sum, type Ledger } from './ledger.js';

/** A hub online with a report unacknowledged for longer than this (ms) is stalled: the run fails. */
export const STALL_MS = 5_000;

/** One fault the run injected and what the hubs found when they came back. */
export interface EventReport {
  /** `kill 1/3`, `rolling 2/3` */
  name: string;
  /**
   * a node's kill -9 or SIGTERM, or SIGSTOP and SIGCONT (`freeze`); a kill -9 (`nats`, `redis`) or
   * SIGSTOP (`-hang`) of the cluster's nats-server or redis-server
   */
  kind: 'kill' | 'rolling' | 'freeze' | 'nats' | 'redis' | 'nats-hang' | 'redis-hang';
  node: string;
  pid: number;
  /** seconds since the traffic started */
  atS: number;
  /** hub sessions on the process when the signal went out */
  hubsOnNode: number;
  /** signal → process gone, ms */
  exitMs: number;
  /** rolling: the exit code (0: a clean drain); null when it had to be killed */
  exitCode?: number | null;
  /** rolling: still running after the grace period, killed */
  forced?: boolean;
  /** the replacement process: boot → /readyz 200, ms */
  restartMs: number;
  /** every hub of the process was back online and checked before the next step */
  allBack: boolean;
  /**
   * the signal went out right after the process acknowledged a report sent at most 20 ms before;
   * false: no such ack came within 5 s and it was signalled anyway
   */
  underTraffic: boolean;
  /** hubs this run dropped in the gap before the signal (`--blip`) */
  blipped: number;
  /** hubs online with a report unacknowledged for over STALL_MS just before the signal (the last fault's aftermath) */
  stalledBefore: number;
  ledger: LedgerReport;
  /** command requests to this process without a definitive answer */
  commandsUndefined: number;
  /** reloads the apps were told to do after this fault, until the next one (`too_old` apart) */
  appReloads: number;
  /** `too_old` reloads after this fault (AppsReport.reloads) */
  appLossReloads: number;
}

/** A ledger as reported: the ms back of its hubs as their median and maximum. */
export type LedgerReport = Omit<Ledger, 'backMs'> & { backP50Ms: number; backMaxMs: number };

export interface RunReport {
  tool: 'chaos';
  /** HEAD of the checkout */
  commit: string;
  /** the last commit that changed src/ or proto/: the server code measured */
  serverCommit: string;
  /** src/ and proto/ have no uncommitted changes */
  srcClean: boolean;
  seed: number;
  options: Record<string, unknown>;
  durationS: number;
  /** the figures depend on what else runs on the machine: the 1-minute load average at start and end */
  machine: { cpus: number; loadAvg1mStart: number; loadAvg1mEnd: number };
  events: EventReport[];
  /** checks of sessions that ended on processes not signalled by the run (takeovers, timeouts) */
  other: LedgerReport;
  /** checks of sessions the run closed itself (`--blip`) */
  blips: LedgerReport;
  /** the final check: what no reconnect check had counted already */
  end: LedgerReport & { notIdle: number; stalled: number };
  totals: { lostAckedReports: number; lostPerKill: number[]; lostPerRestart: number[]; reportsSent: number };
  commands: {
    sent: number;
    ok: number;
    errors: Record<string, number>;
    undefinedToKilled: Record<string, number>;
    undefinedToStopped: Record<string, number>;
    undefinedOther: Record<string, number>;
  };
  /** what the apps got (null: --apps 0) */
  apps: AppsReport | null;
  hubs: { closes: Record<string, number>; connectErrors: Record<string, number>; errorFrames: Record<string, number>; gaveUp: number };
  /** why the run failed; empty when it passed */
  failures: string[];
  pass: boolean;
}

export function ledgerReport(l: Ledger | undefined): LedgerReport {
  const back = [...(l?.backMs ?? [])].sort((a, b) => a - b);
  return {
    sessionsEnded: l?.sessionsEnded ?? 0,
    checked: l?.checked ?? 0,
    lost: l?.lost ?? 0,
    hubsWithLoss: l?.hubsWithLoss ?? 0,
    late: l?.late ?? 0,
    cursorBehind: l?.cursorBehind ?? 0,
    cursorFramesBehind: l?.cursorFramesBehind ?? 0,
    unreadable: l?.unreadable ?? 0,
    backP50Ms: Math.round(back[Math.floor(back.length / 2)] ?? 0),
    backMaxMs: Math.round(back[back.length - 1] ?? 0),
  };
}

export function commandsReport(t: CommandTally): RunReport['commands'] {
  return {
    sent: t.sent,
    ok: t.ok,
    errors: { ...t.errors },
    undefinedToKilled: { ...t.undefinedAnswers.toKilled },
    undefinedToStopped: { ...t.undefinedAnswers.toStopped },
    undefinedOther: { ...t.undefinedAnswers.other },
  };
}

/** What makes the run fail: lost acknowledged reports, undefined answers (except from killed processes), anything unverified. */
export function failuresOf(r: Omit<RunReport, 'failures' | 'pass'>): string[] {
  const out: string[] = [];
  if (r.totals.lostAckedReports > 0) out.push(`${r.totals.lostAckedReports} acknowledged reports lost`);
  const stopped = sum(r.commands.undefinedToStopped);
  const other = sum(r.commands.undefinedOther);
  if (stopped > 0) out.push(`${stopped} commands to a draining (SIGTERM) process without a definitive answer`);
  if (other > 0) out.push(`${other} commands to live processes without a definitive answer`);
  const notBack = r.events.filter((e) => !e.allBack).map((e) => e.name);
  if (notBack.length > 0) out.push(`hubs not back in time after ${notBack.join(', ')}`);
  const unreadable = r.events.reduce((a, e) => a + e.ledger.unreadable, 0) + r.other.unreadable + r.blips.unreadable + r.end.unreadable;
  if (unreadable > 0) out.push(`${unreadable} shadows could not be read (unverified)`);
  const stalled = r.events.filter((e) => e.stalledBefore > 0).map((e) => `${e.stalledBefore} before ${e.name}`);
  if (r.end.stalled > 0) stalled.push(`${r.end.stalled} at the end`);
  if (stalled.length > 0) out.push(`hubs online with a report unacknowledged for over ${STALL_MS / 1000} s: ${stalled.join(', ')}`);
  if (r.end.notIdle > 0) out.push(`${r.end.notIdle} hubs not online and idle at the end`);
  if (r.hubs.gaveUp > 0) out.push(`${r.hubs.gaveUp} hubs gave up reconnecting`);
  const a = r.apps;
  if (a) {
    if (a.gaps > 0 || a.repeats > 0) out.push(`apps were handed events out of order: ${a.gaps} gaps, ${a.repeats} repeats`);
    if (a.staleAfterNew > 0) out.push(`apps were handed ${a.staleAfterNew} old values after newer ones (a session the hub had left publishing late)`);
    if (a.placedAgain > 0) out.push(`apps were handed ${a.placedAgain} events again with a position after they had them without one`);
    if (a.missed > 0) out.push(`${a.missed} acknowledged reports on ${a.devicesWithMiss} devices never reached an app (${a.missedSample.slice(0, 5).map((m) => `${m.hub}/${m.device} n=${m.n} sent at ${m.sentS ?? '?'} s, its home's subscriptions answered at ${m.subscribedS.map(([s, r]) => `${s} s${r === undefined ? '' : r ? ' recovered' : ' not recovered'}`).join(', ') || 'none near'}`).join(', ')})`);
    if (sum(a.refused) > 0) out.push(`app subscriptions refused: ${fmtCounts(a.refused)}`);
    // a reload is expected only where the history's continuity is lost: an embedded node's kill -9
    const expected = (e: EventReport) => r.options.mode === 'embedded' && e.kind === 'kill';
    const unexpected = r.events.filter((e) => e.appReloads > 0 && !expected(e)).map((e) => `${e.appReloads} after ${e.name}`);
    if (unexpected.length > 0) out.push(`apps told to reload where they should have recovered: ${unexpected.join(', ')}`);
    // too_old: an app away while an event went out without a position (cluster mode), at most once a reconnect
    const lossReloads = a.reloads.too_old ?? 0;
    const reconnects = sum(a.connectionsByNode) - a.apps;
    const lossExplained = r.options.mode === 'cluster' && a.unpositioned > 0 && lossReloads <= reconnects;
    const other = Object.keys(a.reloads).filter((k) => k !== 'epoch_changed' && !(k === 'too_old' && lossExplained));
    if (other.length > 0) out.push(`app reloads for ${other.join(', ')}`);
  }
  return out;
}

const fmtCounts = (c: Record<string, number>) =>
  Object.entries(c)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(', ') || '-';

/** The human summary: one row per injected fault, then commands and the verdict. */
export function formatReport(r: RunReport): string {
  const rows: Array<Array<string | number>> = [
    ['event', 'node', 'pid', 'at s', 'hubs on it', 'stalled before', 'back p50/max s', 'acked reports lost', 'hubs with loss', 'cursor behind (hubs/frames)', 'late writes', 'cmds no answer', 'app reloads', 'exit ms', 'restart s'],
  ];
  const s = (ms: number) => (ms / 1000).toFixed(1);
  for (const e of r.events) {
    rows.push([
      e.name + (e.kind === 'rolling' && e.exitCode !== 0 ? ` (exit ${e.forced ? 'forced' : String(e.exitCode)})` : '') + (e.underTraffic ? '' : ' (idle)'),
      e.node,
      e.pid,
      e.atS.toFixed(0),
      e.hubsOnNode,
      e.stalledBefore,
      `${s(e.ledger.backP50Ms)}/${s(e.ledger.backMaxMs)}${e.allBack ? '' : ' (not all)'}`,
      e.ledger.lost,
      e.ledger.hubsWithLoss,
      `${e.ledger.cursorBehind}/${e.ledger.cursorFramesBehind}`,
      e.ledger.late,
      e.commandsUndefined,
      e.appLossReloads > 0 ? `${e.appReloads} +${e.appLossReloads} too_old` : e.appReloads,
      Math.round(e.exitMs),
      s(e.restartMs),
    ]);
  }
  if (r.other.sessionsEnded > 0 || r.other.lost > 0) rows.push(['other closes', '', '', '', r.other.sessionsEnded, '', '', r.other.lost, r.other.hubsWithLoss, `${r.other.cursorBehind}/${r.other.cursorFramesBehind}`, r.other.late, '', '', '', '']);
  if (r.blips.sessionsEnded > 0) rows.push(['blips', '', '', '', r.blips.sessionsEnded, '', `${s(r.blips.backP50Ms)}/${s(r.blips.backMaxMs)}`, r.blips.lost, r.blips.hubsWithLoss, `${r.blips.cursorBehind}/${r.blips.cursorFramesBehind}`, r.blips.late, '', '', '', '']);
  rows.push(['final check', '', '', '', '', r.end.stalled, '', r.end.lost, r.end.hubsWithLoss, '', r.end.late, '', '', '', '']);
  const c = r.commands;
  const lines = [
    `chaos run (${String(r.options.mode)}): server code at ${r.serverCommit}${r.srcClean ? '' : ' plus uncommitted changes'} (checkout ${r.commit}), seed ${r.seed}, ${r.durationS.toFixed(0)} s: ${r.options.hubs} hubs x ${r.options.devices} devices, a report every ${r.options.reportMs} ms per hub, ${r.options.commandRate} commands/s`,
    `machine: ${r.machine.cpus} cores, load average ${r.machine.loadAvg1mStart.toFixed(1)} at start, ${r.machine.loadAvg1mEnd.toFixed(1)} at end`,
    '',
    table(rows),
    '',
    `acknowledged reports lost: ${r.totals.lostAckedReports} in total` +
      (r.totals.lostPerKill.length > 0 ? `; per kill -9: ${r.totals.lostPerKill.join(', ')}` : '') +
      (r.totals.lostPerRestart.length > 0 ? `; per rolling restart: ${r.totals.lostPerRestart.join(', ')}` : '') +
      ` (of ${r.totals.reportsSent} reports sent)`,
    `commands: ${c.sent} sent, ${c.ok} answered 200; error answers: ${fmtCounts(c.errors)}`,
    `commands without a definitive answer: to a killed process ${sum(c.undefinedToKilled)} (expected: ${fmtCounts(c.undefinedToKilled)}); ` +
      `to a draining process ${sum(c.undefinedToStopped)} (${fmtCounts(c.undefinedToStopped)}); to live processes ${sum(c.undefinedOther)} (${fmtCounts(c.undefinedOther)})`,
    r.apps
      ? `apps: ${r.apps.apps} clients on ${r.apps.homes} homes, ${r.apps.delivered} events delivered with a position, ${r.apps.unpositioned} without; gaps ${r.apps.gaps}, repeats ${r.apps.repeats}, old values after new ${r.apps.staleAfterNew}, handed again with a position ${r.apps.placedAgain} (positions moved past without it: ${r.apps.skipped}); reports delivered twice (at least once) ${r.apps.reportsTwice}; ` +
        `acknowledged reports never delivered ${r.apps.missed}; reloads: ${fmtCounts(r.apps.reloads)} (${r.apps.homesReloaded} homes); refused: ${fmtCounts(r.apps.refused)}; ` +
        `connections through the balancer by node: ${fmtCounts(r.apps.connectionsByNode)}`
      : 'apps: none (--apps 0)',
    `hub sessions closed by code: ${fmtCounts(r.hubs.closes)}; failed connects: ${fmtCounts(r.hubs.connectErrors)}; error frames: ${fmtCounts(r.hubs.errorFrames)}`,
    '',
    r.pass ? 'PASS' : `FAIL: ${r.failures.join('; ')}`,
  ];
  return lines.join('\n');
}
