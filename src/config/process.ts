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

/** On the first SIGTERM or SIGINT runs `close` once, then exits 0 (1 if closing failed). */
export function closeOnSignals(log: Logger, what: string, close: () => Promise<void>): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
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
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
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
