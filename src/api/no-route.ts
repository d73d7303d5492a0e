/**
 * What the public port answers outside its route table: `405 method_not_allowed` with `Allow` for a
 * path the table has under other methods (RFC 9110 §15.5.6), `400 unsupported_version` for another
 * protocol version's socket path, else `404 not_found`; each with the caller's `x-request-id`, as
 * the routes answer. Mount it last: uWS gives a request to the first route that matches.
 */
import { TierError } from '../errors.js';
import type { AccessLog } from '../log/access-log.js';
import { errorReply, requestIds, send, type HttpReply, type RouteTable } from '../transport/http.js';
import type { TemplatedApp } from '../transport/uws.js';
import type { WriteBatch } from '../transport/write-batch.js';

export interface NoRouteDeps {
  /** the app's routes, read at each request: modules mounted later are in it too; absent, every such path is 404 */
  table?: RouteTable | undefined;
  writes?: WriteBatch | undefined;
  access?: AccessLog | undefined;
}

export function mountNoRoute(app: TemplatedApp, deps: NoRouteDeps): void {
  const ids = requestIds(deps.access);
  const allowed = new AllowedMethods(deps.table ?? []);
  const noRoute = json(404, new TierError('not_found', 'no such route'));
  app.any('/*', (res, req) => {
    const state = { aborted: false };
    res.onAborted(() => {
      state.aborted = true;
    });
    const url = req.getUrl();
    const method = req.getMethod().toUpperCase();
    const allow = allowed.of(url);
    const reply = allow !== null ? notAllowed(method, allow) : (otherVersion(url) ?? noRoute);
    // at the end of the turn, as every route answers: a request pipelined behind it then closes the
    // connection. Answered at once, a client pipelining 404s had the node answer each 512 KB read whole, stalling its loop
    send(res, state, reply, deps.writes, ids.from(req.getHeader('x-request-id')), method === 'HEAD');
  });
}

function json(status: number, err: TierError): HttpReply {
  return { status, text: JSON.stringify(errorReply(err).body), contentType: 'application/json' };
}

function notAllowed(method: string, allow: string[]): HttpReply {
  const reply = json(405, new TierError('method_not_allowed', `${method.slice(0, 16)} is not a method of this path: ${allow.join(', ')}`));
  return { ...reply, headers: { allow: allow.join(', ') } };
}

/** The methods the table has for a path, matched segment by segment (`:name` takes any one segment). */
class AllowedMethods {
  private patterns: Array<{ segments: string[]; methods: string[] }> = [];
  private seen = -1;

  constructor(private readonly table: RouteTable) {}

  /** null when no pattern matches the path */
  of(url: string): string[] | null {
    this.compile();
    const parts = url.split('/');
    let found: Set<string> | null = null;
    for (const p of this.patterns) {
      if (p.segments.length !== parts.length) continue;
      if (!p.segments.every((s, i) => (s.startsWith(':') ? parts[i] !== '' : s === parts[i]))) continue;
      found ??= new Set();
      for (const m of p.methods) found.add(m);
    }
    return found === null ? null : [...found];
  }

  /** made again when routes were added since: the table is filled as modules mount */
  private compile(): void {
    if (this.seen === this.table.length) return;
    this.seen = this.table.length;
    this.patterns = this.table.map((r) => {
      const method = r.method.toUpperCase();
      return { segments: r.pattern.split('/'), methods: method === 'GET' && r.noHead !== true ? ['GET', 'HEAD'] : [method] };
    });
  }
}

/**
 * `/hub/vN` or `/app/vN` of a version this node does not speak: said as such, 400 (a future
 * firmware's `/hub/v2` met a rolled-back node's 404 `not_found`, which a hub does not retry; review "compat").
 */
function otherVersion(url: string): HttpReply | null {
  const m = /^\/(hub|app)\/v\d+$/.exec(url);
  if (m === null || url.endsWith('/v1')) return null;
  const spoken = `/${m[1]}/v1`;
  return json(400, new TierError('unsupported_version', `${url} is not spoken here: this node speaks ${spoken}`));
}
