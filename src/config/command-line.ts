import { basename, extname, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { toolSettings } from './config.js';

type Options = NonNullable<ParseArgsConfig['options']>;
type Parsed<O extends Options> = ReturnType<typeof parseArgs<{ allowPositionals: true; options: O }>>;

/**
 * A CLI's arguments (positionals allowed), with `--cluster` resolved into `--redis`: the REDIS_URL
 * the node reads (the environment, else CONFIG_FILE), so a password need not be on the command
 * line, where `ps` and a Kubernetes Job's spec show it. Null after printing what was wrong and the
 * usage (exit 2): an option without its value threw a stack before.
 */
export function parseCommandLine<O extends Options>(options: O, usage: string): Parsed<O> | null {
  const refuse = (message: string) => {
    process.stderr.write(`${message}\n${usage}\n`);
    return null;
  };
  let parsed: Parsed<O>;
  try {
    parsed = parseArgs({ allowPositionals: true, options });
  } catch (err) {
    return refuse((err as Error).message);
  }
  const values = parsed.values as { redis?: string; cluster?: boolean };
  if (!values.cluster) return parsed;
  if (values.redis !== undefined) return refuse('--redis URL or --cluster, not both');
  const url = toolSettings(['redisUrl']).redisUrl;
  if (url === undefined) return refuse('--cluster reads REDIS_URL (the environment, else CONFIG_FILE), which is not set');
  values.redis = url;
  return parsed;
}

/**
 * A path given on a command line, as its user meant it: `npm run` starts a script in the package's
 * directory, so a relative path is taken from where npm was started (`INIT_CWD`), not from there.
 * Only when npm runs this very script (its command names `script`): an INIT_CWD inherited from
 * another npm script (the CLI run with `node` inside it) is not this command line's (review diff7).
 * `-` (stdin or stdout) stays as it is.
 */
export function commandLinePath(path: string, env: NodeJS.ProcessEnv = process.env, script = basename(process.argv[1] ?? '', extname(process.argv[1] ?? ''))): string {
  const viaNpm = env.INIT_CWD !== undefined && script !== '' && (env.npm_lifecycle_script ?? '').includes(script);
  return path === '-' ? path : resolve(viaNpm ? env.INIT_CWD! : process.cwd(), path);
}
