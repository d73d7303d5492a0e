import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Files of the running code that make a release: compiled or source modules and the pages served. */
const CODE = /\.(?:js|ts|html)$/;

/**
 * The release this process runs, for telling the nodes of a rolling update apart (diagnose's
 * `releases`, `tier_build_info`): `TIER_RELEASE` when set (an image tag), else the package's version
 * and the start of a SHA-256 over the code beside this module (src/ under `npm start`, dist/src/
 * when compiled), so two builds of different commits differ without git in the image.
 */
export function codeRelease(root?: string): string {
  if (root === undefined) return (ownRelease ??= codeRelease(fileURLToPath(new URL('..', import.meta.url))));
  const hash = createHash('sha256');
  for (const file of codeFiles(root)) hash.update(file).update('\0').update(readFileSync(join(root, file))).update('\0');
  return `${packageVersion(root)}+${hash.digest('hex').slice(0, 12)}`;
}

// read once a process: configuration is loaded more than once (tests, the CLIs)
let ownRelease: string | undefined;

function codeFiles(root: string): string[] {
  const entries = readdirSync(root, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && CODE.test(e.name) && !e.name.endsWith('.d.ts'))
    .map((e) => join(e.parentPath, e.name).slice(root.length))
    .sort();
}

/** package.json one level above the code (the repository's, or the one `npm run build` writes into dist/). */
function packageVersion(root: string): string {
  try {
    const version = (JSON.parse(readFileSync(join(root, '..', 'package.json'), 'utf8')) as { version?: unknown }).version;
    return typeof version === 'string' && version !== '' ? version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}
