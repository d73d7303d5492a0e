import { resolve } from 'node:path';

/**
 * A path given on a command line, as its user meant it: `npm run` starts a script in the package's
 * directory, so a relative path is taken from where npm was started (`INIT_CWD`), not from there.
 * `-` (stdin or stdout) stays as it is.
 */
export function commandLinePath(path: string, env: NodeJS.ProcessEnv = process.env): string {
  return path === '-' ? path : resolve(env.INIT_CWD ?? process.cwd(), path);
}
