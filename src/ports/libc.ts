/**
 * The C library through koffi (a prebuilt FFI binding), loaded once a process, or why it cannot
 * be: no libc known for the platform, or koffi's binary missing. For the few calls Node does not
 * offer (flock, _exit).
 */
import { createRequire } from 'node:module';

export interface Libc {
  /** a function of the library by its C prototype, e.g. `int flock(int fd, int op)`; pointers are Buffers, strings strings */
  func(prototype: string): (...args: unknown[]) => number;
  /** errno of the last call */
  errno(): number;
}

const NAMES: Partial<Record<NodeJS.Platform, string[]>> = {
  linux: ['libc.so.6', 'libc.musl-x86_64.so.1', 'libc.musl-aarch64.so.1'],
  darwin: ['libSystem.B.dylib'],
  freebsd: ['libc.so.7'],
};

let loaded: Libc | { unavailable: string } | undefined;

export function loadLibc(): Libc | { unavailable: string } {
  return (loaded ??= lookUp());
}

function lookUp(): Libc | { unavailable: string } {
  const names = NAMES[process.platform];
  if (!names) return { unavailable: `no libc known on ${process.platform}` };
  let koffi: typeof import('koffi');
  try {
    // loaded only here: a platform without koffi's binary still starts, warned by the caller
    koffi = createRequire(import.meta.url)('koffi') as typeof import('koffi');
  } catch (err) {
    return { unavailable: `koffi: ${(err as Error).message.split('\n')[0]}` };
  }
  let first: string | undefined;
  for (const name of names) {
    try {
      const lib = koffi.load(name);
      return { func: (prototype) => lib.func(prototype) as (...args: unknown[]) => number, errno: () => koffi.errno() };
    } catch (err) {
      first ??= (err as Error).message.split('\n')[0];
    }
  }
  return { unavailable: `koffi: ${first}` };
}
