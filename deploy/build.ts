import { spawn } from 'node:child_process';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { buildClientBundle, PREBUILT_BUNDLE } from '../src/api/client-bundle.js';

/**
 * `npm run build [-- --out DIR]`: compiles the node once, into `dist/` by default, so that it runs as
 * `node dist/src/main.js` with no TypeScript loader and no bundler at run time. tsc emits src/ and
 * proto/ as they are laid out (their imports already name `.js`); then the files the node reads
 * beside its modules are added.
 */

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Read at run time relative to the module that reads them (`new URL(…, import.meta.url)`). */
const ASSETS = ['src/api/console.html', 'src/api/console.js', 'proto/PROTOCOL.md', 'proto/asyncapi.yaml'];

export class BuildError extends Error {
  override name = 'BuildError';
  readonly code = 'build_failed';
}

export interface BuildOptions {
  /**
   * Type-check while compiling. Off only where the same sources were checked already (`npm test`
   * runs `tsc --noEmit` first): the emitted JavaScript is the same, in half the time.
   * @default true
   */
  check?: boolean;
}

/** Compiles into `out` (emptied first); resolves with the path of the entry point to run with `node`. */
export async function build(out: string, opts: BuildOptions = {}): Promise<string> {
  await rm(out, { recursive: true, force: true });
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const noCheck = opts.check === false ? ['--noCheck'] : [];
  const code = await new Promise<number | null>((done, fail) => {
    const child = spawn(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', out, ...noCheck], { cwd: ROOT, stdio: 'inherit' });
    child.once('error', fail);
    child.once('exit', done);
  });
  if (code !== 0) throw new BuildError(`tsc -p tsconfig.build.json exited with ${code}`);

  for (const file of ASSETS) {
    await mkdir(dirname(join(out, file)), { recursive: true });
    await copyFile(join(ROOT, file), join(out, file));
  }
  // GET /client.js serves this file when compiled (src/api/client-bundle.ts)
  await writeFile(join(out, 'src/api', PREBUILT_BUNDLE), await buildClientBundle());
  // the emitted files are ES modules wherever the directory is copied to; the version names the release (src/config/release.ts)
  const { version } = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  await writeFile(join(out, 'package.json'), `${JSON.stringify({ type: 'module', private: true, version }, null, 2)}\n`);
  return join(out, 'src/main.js');
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const { values } = parseArgs({ options: { out: { type: 'string', default: 'dist' } } });
  const main = await build(resolve(ROOT, values.out!)).catch((err: unknown) => {
    process.stderr.write(`build failed: ${(err as Error).message}\n`);
    process.exit(1);
  });
  process.stdout.write(`built: node ${relative(process.cwd(), main)}\n`);
}
