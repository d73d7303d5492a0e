/**
 * Which `Host` the admin port answers: an IP literal (probes, scrapers and port-forwards address a
 * pod by its IP or 127.0.0.1), `localhost`, ADMIN_HOST, or a name in ADMIN_ALLOWED_HOSTS. Any other
 * name is refused, so a web page whose name an attacker points at 127.0.0.1 (DNS rebinding) cannot
 * read the port as its own origin from an operator's browser, nor guess the admin token from it.
 */
import { isIP } from 'node:net';
import type { HttpRequest, HttpResponse, TemplatedApp } from '../transport/uws.js';
import { noSniff } from '../transport/http.js';

const METHODS = ['get', 'post', 'put', 'del', 'patch', 'any', 'head', 'options', 'connect', 'trace'] as const;

export class AdminHosts {
  private readonly names: ReadonlySet<string>;
  private readonly anyName: boolean;

  /** `names`: ADMIN_HOST and ADMIN_ALLOWED_HOSTS (`*` takes any name) */
  constructor(names: readonly string[]) {
    this.anyName = names.includes('*');
    this.names = new Set(['localhost', ...names.map(bareName)]);
  }

  allows(host: string): boolean {
    // HTTP/1.0 sends none; a browser always does
    if (host === '') return true;
    const name = bareName(host);
    return isIP(name) !== 0 || this.anyName || this.names.has(name);
  }
}

/** `host` without its port, brackets or trailing dot, lower case. */
function bareName(host: string): string {
  const h = host.trim().toLowerCase();
  if (h.startsWith('[')) return h.slice(1, h.indexOf(']') > 0 ? h.indexOf(']') : undefined);
  // one colon: name:port; more (an unbracketed IPv6 literal) is an address as it is
  const colon = h.indexOf(':');
  const name = colon >= 0 && colon === h.lastIndexOf(':') ? h.slice(0, colon) : h;
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

/**
 * `app` whose every handler, registered now or later (the dashboard mounts after), first checks the
 * request's `Host` and answers 421 to a name `hosts` does not allow. Returns `app` itself.
 */
export function onlyAllowedHosts(app: TemplatedApp, hosts: AdminHosts, refused: () => void): TemplatedApp {
  const target = app as unknown as Record<string, (pattern: string, handler: (res: HttpResponse, req: HttpRequest) => void) => unknown>;
  for (const method of METHODS) {
    const register = target[method];
    if (typeof register !== 'function') continue;
    target[method] = function (pattern, handler) {
      return register.call(app, pattern, (res: HttpResponse, req: HttpRequest) => {
        if (hosts.allows(req.getHeader('host'))) return handler(res, req);
        refused();
        res.cork(() =>
          noSniff(res.writeStatus('421 Misdirected Request'))
            .writeHeader('content-type', 'application/json')
            .writeHeader('cache-control', 'no-store')
            .end('{"ok":false,"code":"host_not_allowed","message":"this admin port answers requests addressed to an IP address, localhost, ADMIN_HOST or a name in ADMIN_ALLOWED_HOSTS"}'),
        );
      });
    };
  }
  return app;
}
