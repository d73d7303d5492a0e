import { statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Whether DATA_DIR still holds the files the node has open. A directory deleted, moved or remounted
 * under a running node went unnoticed: LMDB wrote on into the deleted files, the node acknowledged
 * reports and created hubs, readiness said ready, and the next start found an empty store (an
 * outside team's finding, 2026-12-05). Files are compared by device and inode: one deleted, or
 * replaced by another of the same name, is told apart from the one opened.
 */
export interface DirWatch {
  stop(): void;
}

/** Checks `files` of `dir` every `everyMs`; `onLost` once, with the first one missing or replaced. */
export function watchDataDir(dir: string, files: readonly string[], everyMs: number, onLost: (file: string, why: string) => void): DirWatch {
  const identity = (file: string): string | null => {
    try {
      const s = statSync(join(dir, file));
      return `${s.dev}:${s.ino}`;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ENOENT' ? null : `unreadable:${(err as NodeJS.ErrnoException).code ?? 'error'}`;
    }
  };
  const opened = new Map(files.map((f) => [f, identity(f)]));
  const timer = setInterval(() => {
    for (const [file, was] of opened) {
      const now = identity(file);
      if (now === was) continue;
      clearInterval(timer);
      onLost(file, now === null ? 'gone' : now.startsWith('unreadable') ? `no longer readable (${now.slice('unreadable:'.length)})` : 'replaced by another file');
      return;
    }
  }, everyMs).unref();
  return { stop: () => clearInterval(timer) };
}
