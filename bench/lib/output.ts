/** How every benchmark ends: its text or its JSON on stdout, and its exit code. */

/** With `json`: the JSON object on stdout, the text on stderr (progress goes there too); else the text on stdout. */
export function printResult(json: boolean, text: string, out: unknown): void {
  // the text ends its last line, whether or not the caller ended it
  const lines = text.endsWith('\n') ? text : `${text}\n`;
  if (json) {
    process.stderr.write(lines);
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } else process.stdout.write(lines);
}

/** Runs a benchmark's `main`: exit 0 when done, 1 with the stack (prefixed with `name`) when it throws. */
export function runMain(name: string, main: () => Promise<void>): void {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${name}: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
