import type { TestProject } from 'vitest/node';
import { ensureServers, MissingServerError } from '../load/harness/index.js';
import { compiledNode } from './compiled-node.js';

/**
 * Before any suite: nats-server and redis-server must be there (installed now when this runs as
 * root with apt-get, unless HUBTIER_NO_INSTALL=1), so a missing one stops the run at once with the
 * command that fixes it instead of failing each suite that starts one. Then the node is compiled
 * (test/compiled-node.ts): node processes the suites start run it, as the image does, unless
 * HUBTIER_NODE_ENTRY is set already (set empty, they run src/main.ts through tsx).
 */
export default async function setup(project: TestProject): Promise<void> {
  try {
    ensureServers();
  } catch (err) {
    if (!(err instanceof MissingServerError)) throw err;
    // the message is the whole story: no stack trace around it
    process.stderr.write(`\n${err.message}\n\n`);
    process.exit(1);
  }
  if (process.env.HUBTIER_NODE_ENTRY !== undefined) return;
  // the test workers, forked after this, inherit it, and so do the processes they start
  process.env.HUBTIER_NODE_ENTRY = await compiledNode();
  // watch mode: the same path, the tree of the sources as they are at the rerun
  project.onTestsRerun(async () => void (await compiledNode()));
}
