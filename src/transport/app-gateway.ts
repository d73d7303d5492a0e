import type { AppReply } from '../../proto/app.js';
import { CloseCode } from '../../proto/errors.js';
import { subjects } from '../../proto/subjects.js';
import { AppSession, type AppLink, type AppSessionDeps } from '../actors/app-session.js';
import type { Authenticator, Principal } from '../auth/authenticator.js';
import type { Bus, BusSubscription } from '../ports/bus/bus.js';
import { asTierError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { decodeAppRequest, encodeAppMessage, type AppEncoding } from '../protocol/app-codec.js';
import { appEventBytes, appEventJson } from '../protocol/app-events.js';
import { errorReply, send } from './http.js';
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket } from './uws.js';
import type { WriteBatch } from './write-batch.js';
import type { OpenAppSockets } from './app-sockets.js';

interface AppSocketData {
  principal: Principal;
  enc: AppEncoding;
  link: UwsAppLink | null;
}

/** uWS topic of a home's events in one encoding. */
function topic(enc: AppEncoding, homeId: string): string {
  return `${enc === 'json' ? 'j' : 'm'}/${homeId}`;
}

class UwsAppLink implements AppLink {
  open = true;
  session: AppSession | null = null;
  constructor(
    private readonly ws: WebSocket<AppSocketData>,
    private readonly enc: AppEncoding,
    private readonly writes: WriteBatch,
  ) {}

  /** Written corked at the end of the turn: a command's answer arrives inside a hub socket's callback. */
  reply(msg: AppReply): void {
    if (!this.open) return;
    const payload = encodeAppMessage(msg, this.enc);
    this.writes.defer(() => {
      if (this.open) this.ws.cork(() => this.ws.send(payload, this.enc === 'msgpack'));
    });
  }

  join(homeId: string): void {
    if (this.open) this.ws.subscribe(topic(this.enc, homeId));
  }

  leave(homeId: string): void {
    if (this.open) this.ws.unsubscribe(topic(this.enc, homeId));
  }

  close(code: number, reason: string): void {
    if (!this.open) return;
    this.open = false;
    this.ws.end(code, reason);
  }
}

interface Feed {
  /** app subscribers of the home on this node */
  count: number;
  sub: BusSubscription;
}

/**
 * The node's interest in homes' events: the first app subscriber of a home subscribes this node
 * to `evt.<shard>.<homeId>.*`, the last one leaving unsubscribes. A bus event is published in the
 * shape apps receive: its bytes go to msgpack subscribers as they are, and it is converted once (not
 * per subscriber) when JSON subscribers exist; uWS topic publish fans each out.
 */
export class HomeFeeds {
  private readonly feeds = new Map<string, Feed>();

  constructor(
    private readonly bus: Bus,
    private readonly app: TemplatedApp,
    private readonly log: Logger,
  ) {}

  acquire(homeId: string): void {
    const feed = this.feeds.get(homeId);
    if (feed) {
      feed.count++;
      return;
    }
    const msgpack = topic('msgpack', homeId);
    const json = topic('json', homeId);
    const sub = this.bus.subscribe(subjects.homeEvents(homeId), (msg) => this.fanOut(homeId, msgpack, json, msg.data));
    this.feeds.set(homeId, { count: 1, sub });
  }

  release(homeId: string): void {
    const feed = this.feeds.get(homeId);
    if (!feed) return;
    if (--feed.count === 0) {
      feed.sub.unsubscribe();
      this.feeds.delete(homeId);
    }
  }

  /** Homes this node is subscribed to. */
  get size(): number {
    return this.feeds.size;
  }

  private fanOut(homeId: string, msgpack: string, json: string, data: Uint8Array): void {
    try {
      if (this.app.numSubscribers(msgpack) > 0) this.app.publish(msgpack, appEventBytes(data), true);
      if (this.app.numSubscribers(json) > 0) this.app.publish(json, appEventJson(data), false);
    } catch (err) {
      this.log.error({ err, homeId }, 'event fan-out failed');
    }
  }
}

/**
 * `/app/v1`: authenticated by a JWT (or the admin token) from `?token=`, a `bearer.<token>`
 * WebSocket subprotocol (both usable from a browser) or `Authorization: Bearer`; refused with
 * 401 before the upgrade. JSON text frames by default, msgpack binary frames with `?enc=msgpack`.
 */
export function mountAppGateway(
  app: TemplatedApp,
  deps: {
    auth: Authenticator;
    session: Omit<AppSessionDeps, 'feeds'>;
    feeds: HomeFeeds;
    log: Logger;
    maxMessageBytes: number;
    /** the largest `timeoutMs` a command may ask for (checked by the request schema) */
    commandTimeoutMaxMs: number;
    maxBackpressure: number;
    writes: WriteBatch;
    /** open sockets by token, closed when it is revoked (src/transport/app-sockets.ts) */
    sockets?: OpenAppSockets;
  },
): void {
  const { auth, log } = deps;
  const sessionDeps: AppSessionDeps = { ...deps.session, feeds: deps.feeds };
  let connections = 0;
  app.ws<AppSocketData>('/app/v1', {
    // past the limit a message is still read, to answer frame_too_large and close 1009 with a
    // reason; only beyond this hard cap does uWS drop the connection without a close frame
    maxPayloadLength: deps.maxMessageBytes * 4,
    maxBackpressure: deps.maxBackpressure,
    // a subscriber that cannot keep up is closed (it reconnects and reloads) rather than fed gaps
    closeOnBackpressureLimit: 1,
    idleTimeout: 120,
    sendPingsAutomatically: true,

    upgrade: (res: HttpResponse, req: HttpRequest, context) => {
      const state = { aborted: false };
      res.onAborted(() => {
        state.aborted = true;
      });
      const key = req.getHeader('sec-websocket-key');
      const protocolHeader = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      const query = new URLSearchParams(req.getQuery() ?? '');
      const enc: AppEncoding = query.get('enc') === 'msgpack' ? 'msgpack' : 'json';
      const bearer = protocolHeader.split(',').map((s) => s.trim()).find((p) => p.startsWith('bearer.'));
      const authorization = req.getHeader('authorization');
      const token = query.get('token') ?? bearer?.slice('bearer.'.length);
      const principal = token ? auth.fromToken(token) : auth.fromHeader(authorization);
      principal.then(
        (p) => {
          if (state.aborted) return;
          res.cork(() => res.upgrade<AppSocketData>({ principal: p, enc, link: null }, key, bearer ?? '', extensions, context));
        },
        (err: unknown) => send(res, state, errorReply(asTierError(err))),
      );
    },

    open: (ws) => {
      const data = ws.getUserData();
      const link = new UwsAppLink(ws, data.enc, deps.writes);
      data.link = link;
      const who = data.principal.kind === 'admin' ? 'admin' : data.principal.sub;
      link.session = new AppSession(data.principal, link, sessionDeps, `app:${who}:${++connections}`);
      deps.sockets?.opened(link, data.principal);
    },

    message: (ws, message, isBinary) => {
      const link = ws.getUserData().link;
      const session = link?.session;
      if (!link || !session) return;
      try {
        session.tell({ type: 'request', request: decodeAppRequest(message, isBinary, deps.maxMessageBytes, deps.commandTimeoutMaxMs) });
      } catch (err) {
        const e = asTierError(err);
        if (e.code === 'internal') log.error({ err }, 'app message handling failed');
        session.rejectRaw(e);
        // the error answer first (written at the end of the turn), then a close with its reason
        if (e.code === 'frame_too_large') deps.writes.defer(() => link.close(CloseCode.tooLarge, 'frame_too_large'));
      }
    },

    close: (ws) => {
      const link = ws.getUserData().link;
      if (!link) return;
      link.open = false;
      deps.sockets?.closed(link, ws.getUserData().principal);
      link.session?.tell({ type: 'closed' });
    },
  });
}
