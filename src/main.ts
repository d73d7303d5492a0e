/**
 * `npm start`: one connection node (src/node-main.ts). The open-file limit is judged before the
 * node's modules load, since loading them is what a too-low limit failed first (a bare EMFILE stack).
 */
import { openFileFloor } from './config/open-file-floor.js';

const refused = openFileFloor();
if (refused !== null) {
  process.stderr.write(`configuration error: ${refused}\n`);
  process.exit(2);
}
await import('./node-main.js');
