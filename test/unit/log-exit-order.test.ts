import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, onTestFinished } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

// a process that logs a line too big for the pipe, then two short ones on its way out
const SCRIPT = `
const { createLogger } = await import(${JSON.stringify(`${ROOT}src/log/logger.ts`)});
const { closeOnSignals } = await import(${JSON.stringify(`${ROOT}src/config/process.ts`)});
const log = createLogger('info');
closeOnSignals(log, 'stopping', async () => log.info('last'));
log.info({ pad: 'x'.repeat(2_000_000) }, 'first');
setInterval(() => {}, 1_000);
process.stderr.write('ready\\n');
`;

describe('a process stopped by a signal', () => {
  it('exits only once its log lines are out, whole and in order, though a write was in flight', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', SCRIPT], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    // a failed run must not leave the child behind (it never exits by itself)
    onTestFinished(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    let out = '';
    const exited = once(child, 'exit') as Promise<[number]>;
    const ended = once(child.stdout, 'end');
    child.stdout.setEncoding('utf8');
    // nobody reads for a while: the big line's write is still in flight when the stop begins
    child.stdout.pause();
    await new Promise<void>((resolve) => child.stderr.on('data', (d: Buffer) => d.toString().includes('ready') && resolve()));
    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 300));
    child.stdout.on('data', (d: string) => (out += d)).resume();
    const [[code]] = await Promise.all([exited, ended]);
    expect(code).toBe(0);
    const lines = out.split('\n').filter(Boolean);
    expect(lines.map((l) => (JSON.parse(l) as { msg: string }).msg)).toEqual(['first', 'stopping', 'last']);
  });
});
