/**
 * The log's stdout when nobody reads it (a stalled log shipper, a logging driver that blocks): the
 * lines waiting are bounded (LOG_BUFFER_MAX, then dropped and counted), and a process that ends its
 * log and exits does exit. With pino's default destination it never did: its exit hook retried the
 * write every 100 ms for ever (a drained node SIGKILLed at the pod's grace, a failed start hung),
 * and its buffer grew without a bound (review "lifecycle").
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const logger = fileURLToPath(new URL('../../src/log/logger.ts', import.meta.url));

it('drops what stdout cannot take past its bound, counts it, and exits once its log is ended', async () => {
  // 40 MiB of lines into a pipe this test never reads (64 KiB of kernel buffer), then endLog and exit
  const script = `
    const { createLogger, droppedLogLines, endLog, LOG_BUFFER_MAX } = await import(${JSON.stringify(logger)});
    const log = createLogger('info');
    const pad = 'x'.repeat(1000);
    for (let i = 0; i < 40_000; i++) log.info({ i, pad }, 'a line');
    const rss = process.memoryUsage().rss;
    await endLog(log, 300);
    process.stderr.write(JSON.stringify({ dropped: droppedLogLines(), max: LOG_BUFFER_MAX, rss }) + '\\n');
    process.exit(0);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pause(); // never read
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  child.stdout.destroy();
  expect(code, err).toBe(0);
  const report = JSON.parse(err.trim().split('\n').at(-1)!) as { dropped: number; max: number };
  // 40,000 lines of about 1.1 KB: all but the 16 MiB that waited (and what the pipe took) dropped
  expect(report.dropped).toBeGreaterThan(20_000);
  expect(report.dropped).toBeLessThan(40_000);
});

it.skipIf(!existsSync('/dev/full'))('exits when stdout refuses its writes for good (ENOSPC of a full log disk; EIO of a terminal gone): pino retried for ever (review "diff14")', async () => {
  const script = `
    const { createLogger, droppedLogLines, endLog } = await import(${JSON.stringify(logger)});
    const log = createLogger('info');
    for (let i = 0; i < 1_000; i++) log.info({ i }, 'a line');
    await new Promise((r) => setTimeout(r, 100));
    for (let i = 0; i < 10; i++) log.info({ i }, 'a later line');
    await endLog(log, 5_000);
    process.stderr.write(JSON.stringify({ dropped: droppedLogLines() }) + '\\n');
    process.exit(0);`;
  const full = openSync('/dev/full', 'w');
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', full, 'pipe'] });
  closeSync(full);
  let err = '';
  child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  expect(code, err).toBe(0);
  // the lines after the failure are counted, not retried
  expect((JSON.parse(err.trim().split('\n').at(-1)!) as { dropped: number }).dropped).toBeGreaterThanOrEqual(10);
});
