import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

/** Compiled (`npm run build`): the bundle the build wrote beside this file; no bundler at run time. */
export const PREBUILT_BUNDLE = 'client.bundle.js';
const prebuilt = import.meta.url.endsWith('.js') ? new URL(`./${PREBUILT_BUNDLE}`, import.meta.url) : null;

let bundle: Promise<string> | null = null;

/**
 * The app client library (src/client/) as one ES module for browsers, served at `/client.js` so
 * the console uses it as any web app would. From source, built by esbuild at the first request
 * (about 0.1 s); compiled, read from the build's file. Kept in memory; a failure is tried again at
 * the next request.
 */
export function clientBundle(): Promise<string> {
  bundle ??= (prebuilt ? readFile(prebuilt, 'utf8') : buildClientBundle()).catch((err: unknown) => {
    bundle = null;
    throw err;
  });
  return bundle;
}

/** Bundles src/client/ with esbuild (a dev dependency of the compiled node: imported only here). */
export async function buildClientBundle(): Promise<string> {
  const { build } = await import('esbuild');
  const entry = fileURLToPath(new URL('../client/index.ts', import.meta.url));
  const result = await build({ entryPoints: [entry], bundle: true, format: 'esm', platform: 'browser', target: 'es2020', write: false, legalComments: 'none', logLevel: 'silent' });
  return result.outputFiles[0]!.text;
}
