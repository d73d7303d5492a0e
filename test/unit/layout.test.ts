/**
 * The layout of docs/ARCHITECTURE.md as rules on imports, checked on the source itself: a move that
 * breaks a layer boundary fails here, not in a reviewer's memory.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(ROOT, dir))) {
    const path = join(dir, name);
    if (statSync(join(ROOT, path)).isDirectory()) out.push(...sources(path));
    else if (name.endsWith('.ts')) out.push(path);
  }
  return out;
}

interface Import {
  readonly from: string;
  /** repo-relative path of the imported module, `.ts` */
  readonly target: string;
  readonly typeOnly: boolean;
}

const IMPORT = /^(import|export)\s+(type\s+)?[^'"]*?from\s+'(\.{1,2}\/[^']+)'/gm;

function importsOf(file: string): Import[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const out: Import[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const target = relative(ROOT, resolve(ROOT, dirname(file), m[3]!)).replace(/\.js$/, '.ts');
    out.push({ from: file, target, typeOnly: m[2] !== undefined });
  }
  return out;
}

const SRC = sources('src');
const ALL = [...SRC, ...sources('bench'), ...sources('load'), ...sources('test')];
const edges = ALL.flatMap(importsOf);
const show = (list: Import[]) => list.map((e) => `${e.from} → ${e.target}`);

/** An adapter: a module under src/ports/ that is not a port's interface or the Ports type. */
function isAdapter(path: string): boolean {
  if (!path.startsWith('src/ports/')) return false;
  const parts = path.split('/');
  const base = parts[parts.length - 1]!.replace(/\.ts$/, '');
  // directly in src/ports/: the Ports type, or a helper the adapters share (redis.ts)
  if (parts.length === 3) return base !== 'ports';
  return base !== parts[2];
}

/** Modules that start a process or assemble one: they may pick adapters. */
const ROOTS = new Set(['src/main.ts', 'src/node-main.ts', 'src/push-worker.ts', 'src/data-cli.ts', 'src/fleet-cli.ts', 'src/data-backup.ts', 'src/data-backup-check.ts', 'src/data-backup-file.ts', 'src/data-redis-import.ts', 'src/index.ts', 'src/internal.ts']);
const inCompose = (path: string) => path.startsWith('src/compose/') || ROOTS.has(path);

describe('layout', () => {
  it('finds the sources and their imports (the rules below would pass on nothing otherwise)', () => {
    expect(SRC.length).toBeGreaterThan(40);
    expect(edges.filter((e) => e.target.startsWith('src/ports/')).length).toBeGreaterThan(20);
    expect(isAdapter('src/ports/bus/bus-nats.ts')).toBe(true);
    expect(isAdapter('src/ports/bus/bus.ts')).toBe(false);
    expect(isAdapter('src/ports/redis.ts')).toBe(true);
    expect(isAdapter('src/ports/ports.ts')).toBe(false);
  });

  it('only the composition root (and tests, and other adapters) imports an adapter', () => {
    const bad = edges.filter((e) => isAdapter(e.target) && e.from.startsWith('src/') && !inCompose(e.from) && !e.from.startsWith('src/ports/'));
    expect(show(bad)).toEqual([]);
  });

  it('only the process entries import the composition root', () => {
    const bad = edges.filter((e) => e.target.startsWith('src/compose/') && e.from.startsWith('src/') && !inCompose(e.from));
    expect(show(bad)).toEqual([]);
  });

  it('ports import no layer above them: no gateway, API, auth, admin, rules engine or composition root', () => {
    const above = /^src\/(compose|api|auth|admin|transport|rules\/(?!model\.ts))/;
    const bad = edges.filter((e) => e.from.startsWith('src/ports/') && above.test(e.target) && !e.typeOnly);
    expect(show(bad)).toEqual([]);
  });

  it('the rules engine imports ports and the actor runtime, never the HTTP or socket layers', () => {
    const bad = edges.filter((e) => e.from.startsWith('src/rules/') && /^src\/(compose|api|auth|admin|transport)\//.test(e.target));
    expect(show(bad)).toEqual([]);
  });

  it('schemas describe bodies only: they import no gateway, API, port, authentication or composition root', () => {
    const bad = edges.filter((e) => e.from.startsWith('src/schemas/') && /^src\/(compose|api|auth|admin|transport|ports)\//.test(e.target));
    expect(show(bad)).toEqual([]);
  });

  it('bench/ and load/ reach src/ only through its public surface or its explicit internal entry', () => {
    // the package's exports: the server, its internal entry, the uWS loader alone (the relay floor
    // loads only that, so the floor it measures carries nothing of the server) and the app client
    const exported = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, string> }).exports;
    const entries = new Set(Object.values(exported).map((p) => p.replace(/^\.\//, '')));
    expect([...entries]).toEqual(expect.arrayContaining(['src/index.ts', 'src/internal.ts', 'src/transport/uws.ts', 'src/client/index.ts']));
    const bad = edges.filter((e) => /^(bench|load)\//.test(e.from) && e.target.startsWith('src/') && !entries.has(e.target));
    expect(show(bad)).toEqual([]);
  });

  it('the app client (src/client/) imports only itself and proto/, and no package: it is bundled for browsers', () => {
    const client = SRC.filter((f) => f.startsWith('src/client/'));
    expect(client).toContain('src/client/index.ts');
    const bad = edges.filter((e) => e.from.startsWith('src/client/') && !/^(src\/client|proto)\//.test(e.target));
    expect(show(bad)).toEqual([]);
    const packages = client.flatMap((f) => [...readFileSync(join(ROOT, f), 'utf8').matchAll(/^(?:import|export)\s[^'"]*?from\s+'([^.][^']*)'/gm)].map((m) => `${f} → ${m[1]}`));
    expect(packages).toEqual([]);
  });

  it('no module in src/ or load/ is over about 400 lines without a reason at its top', () => {
    const long = [...SRC, ...sources('load')].filter((f) => {
      const lines = readFileSync(join(ROOT, f), 'utf8').split('\n');
      return lines.length > 430 && !lines.slice(0, 12).some((l) => /over 400 lines/i.test(l));
    });
    expect(long).toEqual([]);
  });
});
