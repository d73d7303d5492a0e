import { MEASURED_NODE_FLAGS, start, type Proc, type ProcOptions } from '../../load/harness/index.js';

export interface FloorProc extends Proc {
  readonly port: number;
  readonly wsUrl: string;
  readonly httpUrl: string;
}

/** Starts `bench/relay-floor.ts` (the bare uWS relay every figure is compared with), measured as a node is. */
export async function startRelayFloor(opts: { nodeFlags?: string[]; mode?: 'naive' | 'corked'; spawnWith?: ProcOptions['spawnWith'] } = {}): Promise<FloorProc> {
  const proc = start(process.execPath, [...(opts.nodeFlags ?? []), ...MEASURED_NODE_FLAGS, 'bench/relay-floor.ts'], { env: { UWS_REQUIRE_NATIVE: '1', RELAY_MODE: opts.mode ?? 'naive' }, spawnWith: opts.spawnWith });
  const line = await proc.waitLine((l) => l.startsWith('{"ready":true'), 30_000);
  const { port } = JSON.parse(line) as { port: number };
  return { ...proc, port, wsUrl: `ws://127.0.0.1:${port}`, httpUrl: `http://127.0.0.1:${port}` };
}
