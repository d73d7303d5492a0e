import { parseArgs, type ParseArgsConfig } from 'node:util';

/**
 * A tool's command line, the same for every tool: strict flags (`-h, --help` added), the usage
 * text on stdout for --help (exit 0), and on a bad flag or a failed check the message and the
 * usage on stderr (exit 2).
 */

type HelpFlag = { help: { type: 'boolean'; short: 'h'; default: false } };
type Config<O extends NonNullable<ParseArgsConfig['options']>> = { options: O & HelpFlag; strict: true; allowPositionals: false };

/** Prints `tool: message` and the usage on stderr and exits 2. */
export function usageError(tool: string, usage: string, message: string): never {
  process.stderr.write(`${tool}: ${message}\n\n${usage}`);
  process.exit(2);
}

/** The parsed flags; exits on --help or a flag that is not in `options`. */
export function commandLine<const O extends NonNullable<ParseArgsConfig['options']>>(tool: string, usage: string, options: O): ReturnType<typeof parseArgs<Config<O>>>['values'] {
  const config: Config<O> = { options: { ...options, help: { type: 'boolean', short: 'h', default: false } }, strict: true, allowPositionals: false };
  let parsed: ReturnType<typeof parseArgs<Config<O>>>;
  try {
    parsed = parseArgs(config);
  } catch (err) {
    return usageError(tool, usage, (err as Error).message);
  }
  if ((parsed.values as { help?: boolean }).help === true) {
    process.stdout.write(usage);
    process.exit(0);
  }
  return parsed.values;
}
