import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { chargePer, MemoryCgroup } from '../../bench/lib/memory-cgroup.js';

// bench:memory's --memory-limit runs the node in a cgroup v1 memory controller it may write
// (this machine kind's); elsewhere the bench refuses, and so this suite is skipped
const writable = MemoryCgroup.writable();

const MB = 2 ** 20;

/** A node process that holds `mb` MB of anonymous memory it has written, then says so. */
function holder(mb: number): ChildProcess {
  const code = `const b = Buffer.alloc(${mb} * 2 ** 20, 1); globalThis.keep = b; process.stdout.write('held\\n'); setInterval(() => {}, 1000);`;
  return spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
}

async function held(child: ChildProcess): Promise<void> {
  let out = '';
  for await (const chunk of child.stdout!) {
    out += String(chunk);
    if (out.includes('held')) return;
  }
  throw new Error('the holder exited before holding its memory');
}

describe.skipIf(!writable)('MemoryCgroup (bench:memory --memory-limit)', () => {
  let cgroup: MemoryCgroup | undefined;
  let child: ChildProcess | undefined;
  afterEach(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
    cgroup?.remove();
    cgroup = child = undefined;
  });

  it('charges what a process started inside allocates there, and nothing of the caller, which goes back to its own cgroup', async () => {
    cgroup = MemoryCgroup.create(`hubtier-test-${process.pid}-a`);
    const own = readFileSync('/proc/self/cgroup', 'utf8');
    const before = cgroup.read();
    child = cgroup.spawnInside(() => holder(64));
    expect(readFileSync('/proc/self/cgroup', 'utf8')).toBe(own);
    await held(child);
    // the caller's own allocations after the spawn are charged to its own cgroup
    const mine = Buffer.alloc(256 * MB, 1);
    const after = cgroup.read();
    expect(mine[0]).toBe(1);
    expect(after.anon - before.anon).toBeGreaterThan(60 * MB);
    expect(after.anon - before.anon).toBeLessThan(200 * MB);
    expect(chargePer(before, after, 64).anon).toBeGreaterThan(0.9 * MB);
    expect(after.oomKills).toBe(0);
  });

  it('a limit below what the process needs gets it killed, and the reading says so', async () => {
    cgroup = MemoryCgroup.create(`hubtier-test-${process.pid}-b`);
    cgroup.limit(cgroup.read().usage + 32 * MB);
    child = cgroup.spawnInside(() => holder(128));
    const [, signal] = (await once(child, 'exit')) as [number | null, string | null];
    expect(signal).toBe('SIGKILL');
    const r = cgroup.read();
    expect(r.oomKills).toBeGreaterThanOrEqual(1);
    expect(r.limitHits).toBeGreaterThan(0);
  });

});
