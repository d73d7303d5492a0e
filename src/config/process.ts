import { endLog, type Logger } from '../log/logger.js';
import { ConfigError, loadConfig, type LoadedConfig } from './config.js';

/** Loads the configuration for a process entry point; a bad value exits 2 with the message. */
export function loadConfigOrExit(): LoadedConfig {
  try {
    return loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`configuration error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

/**
 * The signals that stop a process with a drain. SIGHUP (the terminal or ssh session that started it
 * closed) and SIGUSR2 (a restart, to some supervisors) ended it without one, its lock left for an
 * unclean stop (review "lifecycle"). SIGQUIT keeps its meaning: quit now, with a core.
 */
export const STOP_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR2'] as const;

/**
 * SIGUSR1 would open V8's inspector on 127.0.0.1:9229, where any process of the pod's network
 * (a sidecar) could run code in the node and read its secrets: a listener keeps it shut. Debug with
 * `--inspect` on the command line instead.
 */
export function keepDebuggerShut(log: Logger): void {
  process.on('SIGUSR1', () => log.warn({ signal: 'SIGUSR1' }, 'SIGUSR1 ignored: a signal opens no debugger here (start the process with --inspect to debug it)'));
}

/**
 * On the first stop signal runs `close` once, then exits 0 (1 if closing failed). A second one is
 * said, and the drain goes on (a Pod's SIGTERM comes once); a second SIGINT (Ctrl-C again, an
 * operator behind a drain that waits on a slow disk) ends the process at once, exit 130.
 */
export function closeOnSignals(log: Logger, what: string, close: () => Promise<void>): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      if (signal !== 'SIGINT') return void log.warn({ signal }, 'already stopping: the drain goes on (a second SIGINT ends it at once)');
      log.warn({ signal }, 'SIGINT again: the process ends now, before its drain is done (what was acknowledged is stored; the next start replays as after a crash)');
      return void endLog(log, 500).then(() => process.exit(130));
    }
    stopping = true;
    log.info({ signal }, what);
    // the log's writes are asynchronous: the exit waits until every line is out, in order
    const exit = (code: number) => void endLog(log).then(() => process.exit(code));
    close().then(
      () => exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        exit(1);
      },
    );
  };
  for (const signal of STOP_SIGNALS) process.on(signal, () => stop(signal));
}

/** Runs a process entry point; anything it throws is printed and exits 1 (a ConfigError: its message, exit 2). */
export function runMain(main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    // found while starting (a Redis user refused what the node needs): the message says what to fix
    if (err instanceof ConfigError) {
      process.stderr.write(`configuration error: ${err.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`fatal: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
