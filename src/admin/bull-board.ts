/**
 * bull-board (the BullMQ dashboard) on the admin port, under `/queues`.
 *
 * bull-board ships adapters for Express, Fastify, Koa, Hono, …, not for uWS. The admin port is a
 * uWS app, so this module runs bull-board's Hono adapter and bridges it: a uWS request becomes a
 * WHATWG `Request`, Hono's `fetch` answers with a `Response`, which is written back to uWS. That
 * keeps one admin port (no second listener to configure, expose and protect) for about as much
 * code as a separate `node:http` server would take.
 *
 * Access needs the admin token, checked here before bull-board sees the request:
 * - `Authorization: Bearer <ADMIN_TOKEN>` (curl, scripts), or
 * - a browser opens `/queues` and types the token into the sign-in form it is shown (POSTed to
 *   `/queues/login`, so the token is in no URL: a browser's history keeps every URL typed), or
 *   opens `/queues?token=<ADMIN_TOKEN>` (kept for scripts and bookmarks made before the form): it
 *   gets a session cookie (HMAC of an expiry under the admin token, so it never holds the token;
 *   HttpOnly, SameSite=Strict, path `/queues`) and is redirected to the board.
 * Requests that change something (not GET/HEAD) must also come from the same origin.
 */
import { createHmac } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Queue } from 'bullmq';
import type { AdminTokens } from '../auth/admin-tokens.js';
import { sameBytes } from '../auth/constant-time.js';
import { TierError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { noSniff, readBody } from '../transport/http.js';
import { checkAdminToken, type GuessWatch } from '../auth/guess-limit.js';
import type { HttpRequest, HttpResponse, TemplatedApp } from '../transport/uws.js';
import { peerAddress } from '../transport/client-address.js';
import { fromAnotherSite } from '../auth/another-site.js';

/** The board's Hono app (bull-board-app.ts), as the bridge uses it. */
interface BoardApp {
  fetch(request: Request): Response | Promise<Response>;
}

export interface BullBoardOptions {
  /** the BullMQ queues to show (the push queue) */
  queues: readonly Queue[];
  /** the node's one check of the admin token, with a rotation's others (src/auth/admin-tokens.ts) */
  adminToken: AdminTokens;
  log: Logger;
  /** @default '/queues' */
  basePath?: string;
  /** hide the actions that change jobs (retry, promote, clean, remove, pause); @default false */
  readOnly?: boolean;
  /** @default 65_536 (bytes): largest request body */
  maxBodyBytes?: number;
  /** @default 43_200 (s): lifetime of the session cookie a `?token=` visit sets */
  sessionTtlS?: number;
  /** @default Date.now */
  now?: () => number;
  /** wrong admin tokens by address (guess-limit.ts); absent: not limited */
  guesses?: GuessWatch;
}

const COOKIE = 'tier_board';
/**
 * The dashboard's scripts, styles and images come from its own static files; it writes style
 * attributes, so inline styles stay allowed. Its page links Google Fonts: refused, an admin page
 * calls nowhere else (the system font shows). `base-uri 'self'`: the page sets `<base href>`.
 */
const BOARD_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');
/** headers uWS writes itself, or that do not cross the bridge */
const HOP_HEADERS = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'set-cookie']);

/** Serves bull-board on `app` under `basePath` (call before `listen`). */
export function mountBullBoard(app: TemplatedApp, options: BullBoardOptions): void {
  const basePath = (options.basePath ?? '/queues').replace(/\/+$/, '');
  if (!/^\/[A-Za-z0-9/_-]+$/.test(basePath)) throw new TypeError(`bull-board basePath "${basePath}" must be a plain path such as /queues`);
  const maxBodyBytes = options.maxBodyBytes ?? 65_536;
  const sessions = new Sessions(options.adminToken, options.sessionTtlS ?? 43_200, options.now ?? Date.now);
  const { log } = options;

  // built at the first request that reaches it: loading bull-board and Hono cost every cluster node's start 0.14–0.16 s
  let board: Promise<BoardApp> | null = null;
  const boardApp = (): Promise<BoardApp> =>
    (board ??= import('./bull-board-app.js').then(
      (m) => m.boardApp(basePath, options.queues, options.readOnly === true),
      (err: unknown) => {
        board = null;
        throw err;
      },
    ));

  const handler = (res: HttpResponse, req: HttpRequest): void => {
    const state = { aborted: false };
    res.onAborted(() => {
      state.aborted = true;
    });
    // everything from `req` is read now: uWS frees it when this callback returns
    const method = req.getMethod().toUpperCase();
    const path = req.getUrl();
    const query = new URLSearchParams(req.getQuery() ?? '');
    const headers = new Headers();
    req.forEach((k, v) => headers.append(k, v));
    const secure = headers.get('x-forwarded-proto') === 'https';
    const remote = peerAddress(res);
    const check = (given: string | undefined) => checkAdminToken(sessions, given, remote, 'board', options.guesses);
    const tooMany = (lockedMs: number, page: boolean) =>
      reply(res, state, 429, page ? signInPage(basePath, 'Too many wrong tokens from this address: try again later.') : 'too many wrong admin tokens from this address\n', {
        ...(page ? HTML : {}),
        'retry-after': String(Math.ceil(lockedMs / 1000)),
      });

    // an admin token a page of another site had the operator's browser send: refused unchecked,
    // not counted (its wrong guesses would lock the operators out) and no sign-out either
    const foreign = fromAnotherSite((name) => headers.get(name));
    const refuseForeign = () => reply(res, state, 403, 'refused: a request a page of another site sent through this browser; open the board at its own address\n');
    const signedIn = (location: string) => reply(res, state, 303, '', { location, 'set-cookie': `${COOKIE}=${sessions.issue()}; Path=${basePath}; Max-Age=${sessions.ttlS}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}` });
    if (path === `${basePath}/logout`) {
      // the cookie is cleared in this browser (sessions are signed, not stored: a copy elsewhere lasts until its expiry)
      if (method === 'POST' && foreign) return refuseForeign();
      if (method === 'POST') return reply(res, state, 303, '', { location: basePath, 'set-cookie': `${COOKIE}=; Path=${basePath}; Max-Age=0; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}` });
      return reply(res, state, 200, signOutPage(basePath), HTML);
    }
    if (path === `${basePath}/login` && method === 'POST') {
      if (foreign) return refuseForeign();
      readBody(res, LOGIN_BODY_BYTES).then(
        (buf) => {
          const verdict = check(new URLSearchParams(buf.toString('utf8')).get('token') ?? undefined);
          if (!verdict.ok && verdict.lockedMs > 0) return tooMany(verdict.lockedMs, true);
          if (!verdict.ok) return reply(res, state, 401, signInPage(basePath, 'That is not the admin token.'), HTML);
          signedIn(basePath);
        },
        () => reply(res, state, 413, `body larger than ${LOGIN_BODY_BYTES} bytes\n`),
      );
      return;
    }
    const token = query.get('token');
    if (token !== null && method === 'GET') {
      if (foreign) return refuseForeign();
      // only what a browser says was typed or came from the board itself: an <img> of another page
      // over plain HTTP to a non-loopback address carries no fetch metadata, no Origin and no Referer,
      // and its wrong tokens locked the operators out (review "diff29"); other clients have the form or a bearer
      const site = headers.get('sec-fetch-site');
      if (site !== 'none' && site !== 'same-origin') return reply(res, state, 401, `?token= is taken only from the address bar: sign in with the form at ${basePath}, or send Authorization: Bearer <ADMIN_TOKEN>\n`, { 'www-authenticate': 'Bearer' });
      const verdict = check(token);
      if (!verdict.ok) return verdict.lockedMs > 0 ? tooMany(verdict.lockedMs, false) : reply(res, state, 401, 'admin token refused\n');
      // swap the token for a session cookie, and drop it from the address bar
      query.delete('token');
      const rest = query.toString();
      return signedIn(`${path}${rest ? `?${rest}` : ''}`);
    }
    const bearer = /^Bearer\s+(.+)$/i.exec(headers.get('authorization') ?? '')?.[1];
    const cookie = readCookie(headers.get('cookie'), COOKIE);
    const byBearer = bearer === undefined ? undefined : check(bearer);
    if (byBearer && !byBearer.ok && byBearer.lockedMs > 0) return tooMany(byBearer.lockedMs, false);
    if (!byBearer?.ok && !(cookie !== undefined && sessions.isValid(cookie))) {
      // a browser asking for a page is shown the sign-in form; anything else the way to authenticate
      if (method === 'GET' && (headers.get('accept') ?? '').includes('text/html')) return reply(res, state, 401, signInPage(basePath, ''), { ...HTML, 'www-authenticate': 'Bearer' });
      return reply(res, state, 401, `admin token required: sign in at ${basePath} in a browser, or send Authorization: Bearer <ADMIN_TOKEN>\n`, {
        'www-authenticate': 'Bearer',
      });
    }
    if (method !== 'GET' && method !== 'HEAD' && !sameOrigin(headers)) return reply(res, state, 403, 'cross-origin request refused\n');

    const body = method === 'GET' || method === 'HEAD' ? Promise.resolve(null) : readBody(res, maxBodyBytes);
    // not the request's Host: one the URL parser refuses failed the request (the board's links come from basePath)
    const url = `http://admin${path}${query.size > 0 ? `?${query.toString()}` : ''}`;
    body
      .then(async (buf) => {
        const response = await (await boardApp()).fetch(new Request(url, { method, headers, body: buf === null ? null : new Uint8Array(buf) }));
        const payload = method === 'HEAD' ? Buffer.alloc(0) : Buffer.from(await response.arrayBuffer());
        const out: Record<string, string> = {};
        response.headers.forEach((v, k) => {
          if (!HOP_HEADERS.has(k)) out[k] = v;
        });
        reply(res, state, response.status, payload, out);
      })
      .catch((err: unknown) => {
        if (err instanceof TierError && err.code === 'frame_too_large') return reply(res, state, 413, `body larger than ${maxBodyBytes} bytes\n`);
        log.error({ err, path }, 'bull-board request failed');
        reply(res, state, 500, 'internal error\n');
      });
  };
  app.any(basePath, handler);
  app.any(`${basePath}/*`, handler);
}

/**
 * Session cookies: `<expiry s>.<HMAC-SHA256(admin token, expiry)>`, valid on every node that shares
 * the token. Made under the current token, taken under any token accepted, so a rotation keeps the
 * sessions signed in until the old token goes.
 */
class Sessions {
  constructor(
    private readonly tokens: AdminTokens,
    readonly ttlS: number,
    private readonly now: () => number,
  ) {}

  matches(given: string): boolean {
    return this.tokens.matches(given);
  }

  issue(): string {
    const exp = Math.floor(this.now() / 1000) + this.ttlS;
    return `${exp}.${mac(this.tokens.signing, exp)}`;
  }

  isValid(cookie: string): boolean {
    const [expText, given] = cookie.split('.');
    const exp = Number(expText);
    if (!Number.isSafeInteger(exp) || given === undefined || exp * 1000 <= this.now()) return false;
    const got = Buffer.from(given);
    return this.tokens.all.some((token) => sameBytes(got, Buffer.from(mac(token, exp))));
  }
}

function mac(token: Buffer, exp: number): string {
  return createHmac('sha256', token).update(`bull-board:${exp}`).digest('base64url');
}

function readCookie(header: string | null, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** A browser sends Origin (or Referer) with state-changing requests; it must name this host. */
/** A token is a few dozen bytes: a sign-in body past this is not one. */
const LOGIN_BODY_BYTES = 4_096;
const HTML = { 'content-type': 'text/html; charset=utf-8' };

/** Signing out: a button, since a link cannot POST and a GET may not change anything. */
function signOutPage(basePath: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hubtier queues: sign out</title><link rel="icon" href="data:,"></head>
<body style="font-family: system-ui, sans-serif; max-width: 28rem; margin: 4rem auto">
<h1 style="font-size: 1.3rem">hubtier queues</h1>
<form method="post" action="${basePath}/logout"><button type="submit">Sign out of this browser</button></form>
</body></html>
`;
}

/** The sign-in form: no script (the CSP allows none inline), posted to the same origin only. */
function signInPage(basePath: string, problem: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>hubtier queues: sign in</title><link rel="icon" href="data:,"></head>
<body style="font-family: system-ui, sans-serif; max-width: 28rem; margin: 4rem auto">
<h1 style="font-size: 1.3rem">hubtier queues</h1>
<form method="post" action="${basePath}/login">
<label for="token">Admin token</label><br>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus style="width: 100%; margin: 0.5rem 0">
<button type="submit">Sign in</button>
</form>
${problem ? `<p role="alert" style="color: #b00020">${problem}</p>` : ''}
</body></html>
`;
}

function sameOrigin(headers: Headers): boolean {
  const from = headers.get('origin') ?? headers.get('referer');
  if (from === null) return true; // not a browser (curl with the bearer token)
  try {
    return new URL(from).host === headers.get('host');
  } catch {
    return false;
  }
}

function reply(res: HttpResponse, state: { aborted: boolean }, status: number, body: string | Buffer, headers: Record<string, string> = {}): void {
  if (state.aborted) return;
  res.cork(() => {
    res.writeStatus(`${status} ${STATUS_CODES[status] ?? ''}`);
    // the board's answers carry queued notifications (a home's alerts): kept by no cache, unless it says otherwise
    if (!('cache-control' in headers) || (status >= 300 && status < 500)) res.writeHeader('cache-control', 'no-store');
    // same-origin, not no-referrer: under no-referrer Chromium sent the board's own forms with `Origin: null`, what a sandboxed
    // frame of another site sends (review "diff29"); other sites still get no Referer (a ?token= address)
    noSniff(res).writeHeader('content-security-policy', BOARD_CSP).writeHeader('x-frame-options', 'DENY').writeHeader('referrer-policy', 'same-origin');
    for (const [k, v] of Object.entries(headers)) res.writeHeader(k, v);
    if (status >= 400 && !('content-type' in headers)) res.writeHeader('content-type', 'text/plain; charset=utf-8');
    res.end(body);
  });
}
