/**
 * Ends the process at once, as `kill -9` would but with an exit code: libc's `_exit`, so no
 * `exit` listener runs, no native cleanup hook and no join of libuv's threads. After a failed LMDB
 * commit `process.exit` ran lmdb-js's exit listener, which closes every environment while another
 * environment's writer thread may be committing: a node on a full disk hung in that close (5 stops
 * of 44) or aborted on a corrupted heap (3 of 14; a hostile review, 2026-12-06). A `kill -9` loses
 * nothing acknowledged (every ack follows its commit), so neither does this. Without koffi or
 * libc: SIGKILL (exit status 137).
 */
import { loadLibc } from './libc.js';

export function exitAtOnce(code: number): never {
  const libc = loadLibc();
  if (!('unavailable' in libc)) {
    try {
      libc.func('void _exit(int status)')(code);
    } catch {
      // no _exit to be had: the signal below
    }
  }
  process.kill(process.pid, 'SIGKILL');
  // SIGKILL to itself ends the process before kill returns; this line is for the type checker
  throw new Error('unreachable');
}
