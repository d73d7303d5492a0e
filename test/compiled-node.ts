import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import { build } from '../deploy/build.js';
import { ROOT } from '../load/harness/index.js';
import { processAlive } from '../src/ports/process-identity.js';

/**
 * The node the suites start as a process, compiled once per source tree into `.test-build/<hash>/`
 * (gitignored) and reused while no input changes; `.test-build/current` links to the tree of the
 * sources as they are now, so a watch mode's rerun builds again and the same path runs the new one.
 * Started through tsx, each node process spent about 1.5 s more CPU on loading (its rule threads
 * load tsx too): a third of a core over the suite.
 */

const BUILDS = join(ROOT, '.test-build');
/** What the emitted files depend on: the sources and assets, the compiler settings, the build script, the bundler's version. */
const INPUTS = ['src', 'proto', 'tsconfig.json', 'tsconfig.build.json', 'deploy/build.ts', 'package-lock.json'];

function sourceHash(): string {
  const hash = createHash('sha256');
  const files = INPUTS.flatMap((input) => {
    const path = join(ROOT, input);
    if (!existsSync(path)) return [];
    if (!input.includes('.')) return readdirSync(path, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
    return [path];
  });
  for (const file of files.sort()) hash.update(relative(ROOT, file)).update('\0').update(readFileSync(file)).update('\0');
  return hash.digest('hex').slice(0, 16);
}

const CURRENT = 'current';

/** Resolves with the compiled entry point (`.test-build/current/src/main.js`), building it when the sources changed. */
export async function compiledNode(): Promise<string> {
  const hash = sourceHash();
  await buildOnce(hash);
  // a link made aside and renamed over the old one: a process starting now finds one tree or the other
  const link = join(BUILDS, `${CURRENT}.${process.pid}.partial`);
  rmSync(link, { force: true });
  symlinkSync(hash, link);
  renameSync(link, join(BUILDS, CURRENT));
  // earlier trees are of sources no longer here; a partial one is a run's beside this one, or of a run killed meanwhile
  for (const name of readdirSync(BUILDS)) {
    if (name === hash || name === CURRENT || (name.endsWith('.partial') && processAlive(Number(name.split('.').at(-2))))) continue;
    rmSync(join(BUILDS, name), { recursive: true, force: true });
  }
  return join(BUILDS, CURRENT, 'src/main.js');
}

async function buildOnce(hash: string): Promise<void> {
  const dir = join(BUILDS, hash);
  const main = join(dir, 'src/main.js');
  if (existsSync(main)) return;
  // built aside and renamed into place, so a run beside this one never starts a half-written tree
  const partial = join(BUILDS, `${hash}.${process.pid}.partial`);
  await build(partial, { check: false });
  try {
    renameSync(partial, dir);
  } catch (err) {
    if (!existsSync(main)) throw err;
    rmSync(partial, { recursive: true, force: true });
  }
}
