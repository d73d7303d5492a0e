import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('exitAtOnce: the stop after a failed commit', () => {
  it('ends the process with its code, no exit listener run (lmdb-js closes its environments in one), what was written to stderr kept', () => {
    const script = [
      "import { exitAtOnce } from './src/ports/exit-at-once.ts';",
      "process.on('exit', () => process.stderr.write('an exit listener ran\\n'));",
      "process.stderr.write('data error: the line before\\n');",
      'exitAtOnce(1);',
    ].join('\n');
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' });
    expect(r.signal).toBeNull();
    expect(r.status).toBe(1);
    expect(r.stderr).toBe('data error: the line before\n');
  });
});
