import autocannon from 'autocannon';
import { newHistogram, recordMs, summarize, type LatencySummary } from '../../load/lib/histogram.js';
import { cpuMs, cpuSplitMs } from '../../load/harness/index.js';

/** One autocannon run against one target: the request rate it reached and its latencies. */
export interface CannonResult extends LatencySummary {
  /** 2xx answers per second over the run */
  perSec: number;
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  durationS: number;
  /** CPU time the measured process spent per 2xx answer, µs (user + system) */
  cpuUsPerReq: number;
  /** the part of it spent in the kernel (system calls, loopback TCP), µs */
  cpuSysUsPerReq: number;
  /** CPU time of other processes of interest per 2xx answer, µs, by name */
  otherCpuUsPerReq: Record<string, number>;
  /** fixed-rate runs: requests that found no idle connection and waited */
  late: number;
}

export interface CannonOptions {
  /** base URL, `http://127.0.0.1:port` */
  url: string;
  method: 'GET' | 'POST';
  /** fixed path, or a function called for every request (spread over hubs and devices) */
  path: string | (() => string);
  body?: string;
  headers?: Record<string, string>;
  connections: number;
  durationS: number;
  /** requests per second over all connections; absent: as fast as the target answers */
  rate?: number;
  /** the measured process (its CPU per request is reported) */
  pid: number;
  /** other processes whose CPU per request is reported (the hubs) */
  others?: Record<string, number[]>;
}

export async function cannon(o: CannonOptions): Promise<CannonResult> {
  const hist = newHistogram();
  const headers = { ...o.headers, ...(o.body !== undefined ? { 'content-type': 'application/json' } : {}) };
  const request: autocannon.Request = { method: o.method, path: typeof o.path === 'string' ? o.path : o.path(), headers };
  if (o.body !== undefined) request.body = o.body;
  const nextPath = o.path;
  if (typeof nextPath === 'function') request.setupRequest = (req) => ({ ...req, path: nextPath() });
  const opts: autocannon.Options = {
    url: o.url,
    connections: o.connections,
    pipelining: 1,
    duration: o.durationS,
    timeout: 10,
    requests: [request],
  };
  if (o.rate !== undefined) opts.overallRate = o.rate;
  const sumCpu = (pids: number[]) => pids.reduce((n, p) => n + cpuMs(p), 0);
  const cpu0 = cpuSplitMs(o.pid);
  const others0 = Object.fromEntries(Object.entries(o.others ?? {}).map(([k, pids]) => [k, sumCpu(pids)]));
  const started = performance.now();
  let ok = 0;
  const instance = autocannon(opts) as unknown as autocannon.Instance & PromiseLike<autocannon.Result>;
  instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
    if (status >= 200 && status < 300) {
      ok++;
      recordMs(hist, ms);
    }
  });
  const result = await instance;
  const durationS = (performance.now() - started) / 1000;
  const split = cpuSplitMs(o.pid);
  const cpu = split.user + split.sys - cpu0.user - cpu0.sys;
  const perOk = (ms: number) => (ok === 0 ? 0 : Math.round((ms * 1000) / ok));
  return {
    ...summarize(hist),
    perSec: Math.round(ok / durationS),
    ok,
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    durationS: Math.round(durationS * 10) / 10,
    cpuUsPerReq: perOk(cpu),
    cpuSysUsPerReq: perOk(split.sys - cpu0.sys),
    otherCpuUsPerReq: Object.fromEntries(Object.entries(o.others ?? {}).map(([k, pids]) => [k, perOk(sumCpu(pids) - others0[k]!)])),
    late: 0,
  };
}

/** Paths of command requests spread round-robin over hubs × devices. */
export function commandPaths(hubIds: string[], devices: number): () => string {
  let i = 0;
  const n = hubIds.length * devices;
  return () => {
    const k = i++ % n;
    // consecutive requests go to different hubs
    return `/v1/hubs/${hubIds[k % hubIds.length]}/devices/dev-${Math.floor(k / hubIds.length) % devices}/commands`;
  };
}
