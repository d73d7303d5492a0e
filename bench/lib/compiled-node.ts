import { fileURLToPath } from 'node:url';
import { build } from '../../deploy/build.js';
import { removeAtExit } from '../../load/harness/exit-hooks.js';

let built: Promise<string> | null = null;

/**
 * The node as the container image runs it: compiled by `npm run build` (about 6 s), without a
 * TypeScript loader. Under tsx an idle node holds about 40 MB more of its own memory (PSS 95 MB
 * against 55), which 27 nodes of a scale run pay 27 times.
 * Built once per process, into `dist/bench-node-<pid>` (inside the repository, so its packages
 * resolve; dist/ is not in git), removed at exit: two benchmarks at once do not share one.
 * Resolves with the entry point for `startNode({ entry })`.
 */
export function compiledNode(): Promise<string> {
  if (built) return built;
  const out = fileURLToPath(new URL(`../../dist/bench-node-${process.pid}`, import.meta.url));
  removeAtExit(out);
  return (built = build(out));
}
