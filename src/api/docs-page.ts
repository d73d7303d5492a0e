/**
 * The API documentation page: `GET /docs` renders this node's OpenAPI document (`/v1/openapi.json`)
 * with Swagger UI, whose files come from the `swagger-ui-dist` package and are served by the node
 * itself: the page loads nothing from elsewhere, so it works on a closed network. Beside it, the
 * protocol documents the API description links to: `/docs/protocol.md` (the hub wire, `/hub/v1`)
 * and `/docs/asyncapi.yaml` (the app socket `/app/v1` and the NATS subjects).
 *
 * Every file is read once, when mounted: a missing package fails the start, not a request. The
 * renderer's files carry their content hash in the path and are cached for a year; the page and the
 * protocol documents are revalidated by ETag. GET and HEAD only; anything else falls to the 404.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { gzipSync } from 'node:zlib';
import type { HttpRequest, HttpResponse, TemplatedApp } from '../transport/uws.js';
import { TierError } from '../errors.js';
import { endHead, errorReply, filePressure, send } from '../transport/http.js';
import { endStreaming } from '../transport/stream-body.js';
import type { WriteBatch } from '../transport/write-batch.js';

/** One file served as is; `gzip` is made once, at its first request that accepts it (tens of ms for the bundle). */
interface StaticFile {
  readonly path: string;
  readonly body: Buffer;
  readonly type: string;
  readonly cache: string;
  readonly etag: string;
  readonly headers: Readonly<Record<string, string>>;
  gzip?: Buffer;
}

const IMMUTABLE = 'public, max-age=31536000, immutable';
const REVALIDATE = 'no-cache';
/** below this, compressing costs more than it saves */
const GZIP_MIN_BYTES = 1024;

/**
 * Scripts from this node only. Swagger UI writes style attributes (syntax highlighting, its SVG
 * icons), so inline styles stay allowed; its CSS embeds its icons as data: URLs.
 */
export const DOCS_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/**
 * Points Swagger UI at the node's document. A file, not an inline script, so the page's CSP can
 * forbid inline scripts. BaseLayout has no top bar, hence no validator badge calling out; relative
 * URLs keep working behind a proxy that serves the node under a path prefix.
 */
const INIT_SCRIPT = `window.ui = SwaggerUIBundle({
  url: new URL('v1/openapi.json', document.baseURI).href,
  dom_id: '#swagger-ui',
  layout: 'BaseLayout',
  validatorUrl: null,
  deepLinking: true,
  docExpansion: 'list',
  defaultModelsExpandDepth: 0,
  displayRequestDuration: true,
});
`;

function sha(body: Buffer): string {
  return createHash('sha256').update(body).digest('base64url').slice(0, 16);
}

/** A vendor file without its source map comment: the map is not served, so a browser would ask for it in vain. */
function vendorFile(require: NodeJS.Require, name: string): Buffer {
  const text = readFileSync(require.resolve(`swagger-ui-dist/${name}`), 'utf8');
  return Buffer.from(text.replace(/\n?\/[/*]# sourceMappingURL=\S+\s*(\*\/)?\s*$/, '\n'));
}

function file(path: string, body: Buffer, type: string, cache: string, headers: Record<string, string> = {}): StaticFile {
  // weak: the same content is sent gzipped or not, and If-None-Match compares weakly anyway
  return { path, body, type, cache, etag: `W/"${sha(body)}"`, headers: { 'x-content-type-options': 'nosniff', ...headers } };
}

/** A renderer file under a path named by its content: a new version is a new URL, so it may be cached for good. */
function asset(name: string, body: Buffer, type: string): StaticFile {
  return file(`/docs/assets/${sha(body)}/${name}`, body, type, IMMUTABLE);
}

function page(bundle: StaticFile, css: StaticFile, init: StaticFile): Buffer {
  // paths relative to /docs, so a prefix added by a proxy is kept
  const rel = (f: StaticFile) => f.path.slice(1);
  return Buffer.from(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>hubtier HTTP API</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${rel(css)}">
</head>
<body>
<div id="swagger-ui"><noscript>This page renders <a href="v1/openapi.json">the OpenAPI document</a> with JavaScript.</noscript></div>
<script src="${rel(bundle)}"></script>
<script src="${rel(init)}"></script>
</body>
</html>
`);
}

/** The page and its files, read now. */
function docsFiles(): StaticFile[] {
  const require = createRequire(import.meta.url);
  const bundle = asset('swagger-ui-bundle.js', vendorFile(require, 'swagger-ui-bundle.js'), 'text/javascript; charset=utf-8');
  const css = asset('swagger-ui.css', vendorFile(require, 'swagger-ui.css'), 'text/css; charset=utf-8');
  const init = asset('init.js', Buffer.from(INIT_SCRIPT), 'text/javascript; charset=utf-8');
  const proto = (name: string) => readFileSync(new URL(`../../proto/${name}`, import.meta.url));
  return [
    file('/docs', page(bundle, css, init), 'text/html; charset=utf-8', REVALIDATE, {
      'content-security-policy': DOCS_CSP,
      'x-frame-options': 'DENY',
      'referrer-policy': 'no-referrer',
    }),
    bundle,
    css,
    init,
    // text/* other than a few (csv, vcard…) is shown in the browser, not downloaded
    file('/docs/protocol.md', proto('PROTOCOL.md'), 'text/markdown; charset=utf-8', REVALIDATE),
    file('/docs/asyncapi.yaml', proto('asyncapi.yaml'), 'text/yaml; charset=utf-8', REVALIDATE),
  ];
}

/** Registers the page and its files on `app` (before the app's catch-all 404); answers at the end of the turn with `writes`. */
export function mountDocsPage(app: TemplatedApp, writes?: WriteBatch): void {
  for (const f of docsFiles()) {
    const handler = (res: HttpResponse, req: HttpRequest) => serve(res, req, f, writes);
    app.get(f.path, handler);
    app.head(f.path, handler);
  }
}

/**
 * Everything is in memory, the body streamed as the socket takes it (endStreaming). Answered at the
 * end of the turn, as the API's routes are: a request pipelined behind it then closes the connection
 * (answered at once, pipelined 304s or HEADs had the node answer each 512 KB read whole).
 */
function serve(res: HttpResponse, req: HttpRequest, f: StaticFile, writes: WriteBatch | undefined): void {
  const head = req.getMethod() === 'head';
  const fresh = req
    .getHeader('if-none-match')
    .split(',')
    .some((tag) => tag.trim() === '*' || tag.trim().replace(/^W\//, '') === f.etag.slice(2));
  const gzip = !fresh && f.body.length >= GZIP_MIN_BYTES && /\bgzip\b/.test(req.getHeader('accept-encoding'));
  if (!writes) return answer(res, f, head, fresh, gzip);
  const state = { aborted: false };
  res.onAborted(() => {
    state.aborted = true;
  });
  writes.defer(() => {
    if (!state.aborted) answer(res, f, head, fresh, gzip);
  });
}

function answer(res: HttpResponse, f: StaticFile, head: boolean, fresh: boolean, gzip: boolean): void {
  // short of open files every answer closes its connection (src/transport/http.ts): no body is streamed then
  if (filePressure.closing && !fresh && !head) return send(res, { aborted: false }, errorReply(new TierError('busy', 'the node is short of open files: try again shortly')));
  const body = gzip ? (f.gzip ??= gzipSync(f.body)) : f.body;
  res.cork(() => {
    res.writeStatus(fresh ? '304 Not Modified' : '200 OK');
    res.writeHeader('etag', f.etag).writeHeader('cache-control', f.cache);
    if (f.body.length >= GZIP_MIN_BYTES) res.writeHeader('vary', 'accept-encoding');
    // every answer of both ports carries it (README), a 304 too
    if (fresh) {
      res.writeHeader('x-content-type-options', 'nosniff');
      if (filePressure.closing) res.endWithoutBody(0, true);
      else res.endWithoutBody();
      return;
    }
    res.writeHeader('content-type', f.type);
    for (const name in f.headers) res.writeHeader(name, f.headers[name]!);
    if (gzip) res.writeHeader('content-encoding', 'gzip');
    if (!head) {
      endStreaming(res, body);
      return;
    }
    endHead(res, body.length, filePressure.closing);
  });
}
