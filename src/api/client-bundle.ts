import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ENTRY = fileURLToPath(new URL('../client/index.ts', import.meta.url));

let bundle: Promise<string> | null = null;

/**
 * The app client library (src/client/) as one ES module for browsers, served at `/client.js` so
 * the console uses it as any web app would. Built by esbuild at the first request (about 0.1 s)
 * and kept in memory; a failed build is tried again at the next request.
 */
export function clientBundle(): Promise<string> {
  bundle ??= build({ entryPoints: [ENTRY], bundle: true, format: 'esm', platform: 'browser', target: 'es2020', write: false, legalComments: 'none', logLevel: 'silent' }).then(
    (result) => result.outputFiles[0]!.text,
    (err: unknown) => {
      bundle = null;
      throw err;
    },
  );
  return bundle;
}
