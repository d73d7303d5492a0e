import type { Logger } from '../log/logger.js';
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocketBehavior } from './uws.js';
import { endHead, noSniff } from './http.js';

type HttpMethod = 'get' | 'post' | 'put' | 'del' | 'patch' | 'any' | 'head' | 'options' | 'connect' | 'trace';
const HTTP_METHODS: readonly HttpMethod[] = ['get', 'post', 'put', 'del', 'patch', 'any', 'head', 'options', 'connect', 'trace'];
const WS_CALLBACKS = ['open', 'message', 'drain', 'close', 'ping', 'pong', 'subscription'] as const;

/**
 * One guard around every handler registered on `app`: uWS aborts the process on an exception
 * thrown out of a callback, so nothing a client sends may reach it. A thrown HTTP handler (or
 * upgrade) is logged and answered 500 when it has not answered yet; a thrown WebSocket callback
 * is logged and its socket closed with 1011. Handlers keep their own error handling: this is the
 * backstop for the bug nobody foresaw. Returns `app` itself.
 */
export function guardApp(app: TemplatedApp, log: Logger): TemplatedApp {
  const target = app as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const method of HTTP_METHODS) {
    const register = target[method];
    if (typeof register !== 'function') continue;
    target[method] = function (pattern: unknown, handler: unknown) {
      return register.call(app, pattern, guardHttp(handler as (res: HttpResponse, req: HttpRequest) => void, log));
    };
  }
  const registerWs = target.ws!;
  target.ws = function (pattern: unknown, behavior: unknown) {
    return registerWs.call(app, pattern, guardBehavior(behavior as WebSocketBehavior<unknown>, log));
  };
  return app;
}

function guardHttp(handler: (res: HttpResponse, req: HttpRequest) => void, log: Logger) {
  return (res: HttpResponse, req: HttpRequest): void => {
    try {
      handler(res, req);
    } catch (err) {
      log.error({ err }, 'http handler threw');
      answer500(res, req.getMethod() === 'head');
    }
  };
}

const INTERNAL = '{"ok":false,"code":"internal","num":500,"temporary":true,"message":"unexpected server error"}';

/** A 500 for a response nobody answered; a response already ended or aborted throws: ignored. */
function answer500(res: HttpResponse, head: boolean): void {
  try {
    res.cork(() => {
      noSniff(res.writeStatus('500 Internal Server Error')).writeHeader('content-type', 'application/json');
      if (head) endHead(res, INTERNAL.length);
      else res.end(INTERNAL);
    });
  } catch {
    // answered or aborted already
  }
}

function guardBehavior<T>(behavior: WebSocketBehavior<T>, log: Logger): WebSocketBehavior<T> {
  const out: Record<string, unknown> = { ...behavior };
  if (behavior.upgrade) {
    const upgrade = behavior.upgrade;
    out.upgrade = (res: HttpResponse, req: HttpRequest, context: unknown) => {
      try {
        upgrade(res, req, context as never);
      } catch (err) {
        log.error({ err }, 'websocket upgrade threw');
        answer500(res, false);
      }
    };
  }
  for (const name of WS_CALLBACKS) {
    const cb = behavior[name] as ((ws: { end(code?: number, reason?: string): void }, ...rest: unknown[]) => void) | undefined;
    if (!cb) continue;
    out[name] = (ws: { end(code?: number, reason?: string): void }, ...rest: unknown[]) => {
      try {
        cb(ws, ...rest);
      } catch (err) {
        log.error({ err, callback: name }, 'websocket callback threw');
        if (name === 'close') return; // the socket is gone already
        try {
          ws.end(1011, 'internal');
        } catch {
          // closed meanwhile
        }
      }
    };
  }
  return out as WebSocketBehavior<T>;
}
