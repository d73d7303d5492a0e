import { createRequire } from 'node:module';
import type * as UWS from '@trufflesuite/uws-js-unofficial';

export type { HttpRequest, HttpResponse, TemplatedApp, WebSocket, WebSocketBehavior, us_listen_socket } from '@trufflesuite/uws-js-unofficial';
export type UwsModule = typeof UWS;

/** Which uWebSockets.js build this process runs. */
export interface UwsBinding {
  readonly uws: UwsModule;
  /** npm package it came from */
  readonly packageName: string;
  /** false: the slow `ws`-based shim a package falls back to when its binary does not load */
  readonly native: boolean;
}

/**
 * The one module that loads uWebSockets.js. Order: the official `uWebSockets.js` (installed from
 * its GitHub release), `@btc-vision/uwebsockets.js` (Node 20-25, glibc ≥ 2.38), then
 * `@trufflesuite/uws-js-unofficial` (uWS v20.30 for Node 16/18/20, which silently falls back to a
 * JavaScript shim on other Node versions). The shim is detected by its App not being native code.
 */
const CANDIDATES = ['uWebSockets.js', '@btc-vision/uwebsockets.js', '@trufflesuite/uws-js-unofficial'] as const;

export class UwsLoadError extends Error {
  override name = 'UwsLoadError';
  readonly code = 'uws_unavailable';
}

let loaded: UwsBinding | null = null;

export function loadUws(options: { requireNative: boolean; onWarning?: (msg: string) => void }): UwsBinding {
  if (loaded) return checkNative(loaded, options);
  const require = createRequire(import.meta.url);
  const failures: string[] = [];
  let fallback: UwsBinding | null = null;
  for (const name of CANDIDATES) {
    let mod: UwsModule;
    try {
      mod = require(name) as UwsModule;
    } catch (err) {
      failures.push(`${name}: ${(err as Error).message.split('\n')[0]}`);
      continue;
    }
    const binding = { uws: mod, packageName: name, native: isNative(mod) };
    if (binding.native) {
      loaded = binding;
      return binding;
    }
    fallback ??= binding;
  }
  if (!fallback) throw new UwsLoadError(`no uWebSockets.js build loads here: ${failures.join('; ')}`);
  loaded = fallback;
  return checkNative(fallback, options);
}

function checkNative(binding: UwsBinding, options: { requireNative: boolean; onWarning?: (msg: string) => void }): UwsBinding {
  if (binding.native) return binding;
  const msg = `uWebSockets.js: only the slow JavaScript shim of ${binding.packageName} runs on Node ${process.versions.node}; expect a fraction of the native throughput`;
  if (options.requireNative) throw new UwsLoadError(`${msg} (UWS_REQUIRE_NATIVE=1 makes this fatal)`);
  options.onWarning?.(msg);
  return binding;
}

function isNative(mod: UwsModule): boolean {
  return typeof mod.App === 'function' && Function.prototype.toString.call(mod.App).includes('[native code]');
}
