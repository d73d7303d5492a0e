import { APP_SUBPROTOCOL, bearerToken, isBearerProtocol, type AppEndMessage, type AppReply } from '../../proto/app.js';
import { CloseCode } from '../../proto/errors.js';
import { AppSession, type AppLink, type AppSessionDeps, type FeedSubscriber } from '../actors/app-session.js';
import { adminShaped, type Authenticator, type Principal } from '../auth/authenticator.js';
import { fromAnotherSite } from '../auth/another-site.js';
import { asTierError, AuthError, TierError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { RequestIds } from '../log/request-id.js';
import { refusalLog } from '../log/sampler.js';
import { decodeAppRequest, encodeAppMessage, type AppEncoding } from '../protocol/app-codec.js';
import { appEventJson } from '../protocol/app-events.js';
import { feedTopic, type HomeFeeds } from './home-feeds.js';
import { errorReply, send } from './http.js';
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket } from './uws.js';
import { callerAddress } from './client-address.js';
import type { WriteBatch } from './write-batch.js';
import type { OpenAppSockets } from './app-sockets.js';
import type { AppRefusal, AppSocketLimits } from './app-limits.js';
import { fullBucket, spend, type RateLimit, type TokenBucket } from '../actors/hub-rate.js';
import { monotonicMs } from '../actors/clock.js';

/** uWS's send status of a message it dropped: the socket held more than maxBackpressure unsent. */
const DROPPED = 2;

interface AppSocketData {
  principal: Principal;
  enc: AppEncoding;
  link: UwsAppLink | null;
  /** counted by the limits at the upgrade: given back once, at the close */
  counted: boolean;
  /** the caller's address at the upgrade (behind a trusted proxy, the one it vouched for) */
  remote: string;
}

/** Exported for its unit test (test/unit/app-link-backpressure.test.ts). */
export class UwsAppLink implements AppLink {
  open = true;
  /** joined a home's feed at least once: live events were published to it */
  joined = false;
  session: AppSession | null = null;
  readonly remote: string;
  /** uWS dropped a message for this socket: it is closed when the corked sends end */
  private dropped = false;
  /** bytes of events its recoveries hold while they wait for a drain (`keep`) */
  private held = 0;
  /** its requests' budget, made at its first request (absent: no limit) */
  requests: TokenBucket | undefined;
  /** recoveries waiting for a drain, with their home: one whose subscription ends is let go at once (`leave`) */
  private drainWaiters: Array<{ home: string; resolve: () => void }> = [];

  /**
   * @param budget bytes a recovery lets the socket hold before it waits for a drain: half the
   *   backpressure limit, so a recovery never gets the socket closed
   */
  constructor(
    private readonly ws: WebSocket<AppSocketData>,
    private readonly enc: AppEncoding,
    private readonly writes: WriteBatch,
    private readonly budget: number,
    /** counts what is sent by op (the node's metrics); a no-op without them */
    private readonly sent: (op: string, frames: number) => void,
  ) {
    this.remote = ws.getUserData().remote;
  }

  /** Written corked at the end of the turn: a command's answer arrives inside a hub socket's callback. */
  reply(msg: AppReply | AppEndMessage): void {
    if (!this.open) return;
    this.sent(msg.op, 1);
    const payload = encodeAppMessage(msg, this.enc);
    this.writes.defer(() => {
      if (this.open) this.corked(() => this.sendOne(payload));
    });
  }

  /** Sends one message: false, and the socket marked for closing, when uWS dropped it (past maxBackpressure). */
  private sendOne(payload: string | Uint8Array): boolean {
    if (this.ws.send(payload, this.enc === 'msgpack') !== DROPPED) return true;
    this.dropped = true;
    return false;
  }

  /**
   * Runs sends corked; one dropped closes the socket at once (4009 `backpressure`; that close frame
   * is itself past the limit, so the app mostly sees 1006, as at uWS's own backpressure close):
   * what was queued before is still delivered, nothing after. Kept open, it went on with the next
   * answers and the app saw a gap (pings past the 99,883rd unanswered, later ones answered).
   */
  private corked(sends: () => void): void {
    this.ws.cork(sends);
    if (this.dropped) this.close(CloseCode.backpressure, 'backpressure');
  }

  /**
   * Writes at once, not at the end of the turn: the answer and the missed events go out before
   * the socket joins the topic, and the join happens in the turn the feed was checked.
   */
  subscriber(homeId: string, id: number, wanted: () => boolean): FeedSubscriber {
    const binary = this.enc === 'msgpack';
    const write = (payload: string | Uint8Array) => this.corked(() => this.sendOne(payload));
    const link = this;
    return {
      get open() {
        return link.open && wanted();
      },
      answer: (result) => {
        if (!this.open) return;
        this.sent('ok', 1);
        write(encodeAppMessage({ op: 'ok', id, result }, this.enc));
      },
      send: (events, from) => {
        if (!this.open) return events.length - from;
        let i = from;
        this.corked(() => {
          while (i < events.length && this.ws.getBufferedAmount() < this.budget) {
            const bytes = events[i];
            if (!this.sendOne(binary ? bytes! : appEventJson(bytes!))) break;
            i++;
          }
        });
        this.sent('evt', i - from);
        return i - from;
      },
      drained: () => (this.open && this.ws.getBufferedAmount() >= this.budget / 2 ? new Promise<void>((resolve) => this.drainWaiters.push({ home: homeId, resolve })) : Promise.resolve()),
      keep: (bytes) => {
        if (bytes > 0 && this.held + bytes > this.budget) return false;
        this.held += bytes;
        return true;
      },
      reload: (reason, pos) => {
        if (!this.open) return;
        this.sent('reload', 1);
        write(encodeAppMessage({ op: 'reload', home: homeId, reason, pos }, this.enc));
      },
      join: () => {
        link.joined = true;
        if (this.open) this.ws.subscribe(feedTopic(this.enc, homeId));
      },
    };
  }

  /** uWS drain: the socket wrote some of what it held. */
  drained(): void {
    if (this.ws.getBufferedAmount() >= this.budget / 2) return;
    for (const w of this.drainWaiters.splice(0)) w.resolve();
  }

  leave(homeId: string): void {
    if (this.open) this.ws.unsubscribe(feedTopic(this.enc, homeId));
    // the home's recovery waiting for a drain ends now (it sees its subscription ended): left until
    // the socket read, each sub/unsub of a socket that stopped reading kept one (review "recovery")
    if (this.drainWaiters.some((w) => w.home === homeId)) {
      const ended = this.drainWaiters.filter((w) => w.home === homeId);
      this.drainWaiters = this.drainWaiters.filter((w) => w.home !== homeId);
      for (const w of ended) w.resolve();
    }
  }

  /** A revocation took these homes from the socket's token, which keeps others (OpenAppSockets). */
  loseHomes(homes: readonly string[]): void {
    // a session whose mailbox is full cannot be told: closed, as a token revoked whole is
    if (!this.session?.tell({ type: 'homesLost', homes })) this.close(CloseCode.unauthorized, 'token_revoked');
  }

  close(code: number, reason: string): void {
    if (!this.open) return;
    this.closed();
    this.ws.end(code, reason);
  }

  /** At the end of the turn, after the replies `reply` deferred: an error answer precedes the close frame. */
  closeAfterReplies(code: number, reason: string): void {
    this.writes.defer(() => this.close(code, reason));
  }

  /** The socket is gone: waiters for a drain are let go (they see `open` false). */
  closed(): void {
    this.open = false;
    for (const w of this.drainWaiters.splice(0)) w.resolve();
  }
}

export interface AppGatewayMetrics {
  appConnected(): void;
  /** `backpressure`: closed by uWS because it held more unsent bytes than the limit */
  appClosed(backpressure: boolean): void;
  /** a home subscription taken (+1) or released (-1) */
  subscribed(delta: 1 | -1): void;
  /** a frame from an app by its `op` (`unknown` when it could not be decoded as a request) */
  appFrameIn(op: string): void;
  /** `frames` messages sent to app sockets with this `op` */
  appFramesOut(op: string, frames: number): void;
  /** an upgrade refused by the socket limits: `busy` (the node's), `limit_exceeded` (the user's) */
  appRefused(code: 'busy' | 'limit_exceeded'): void;
}

/**
 * `/app/v1`: authenticated by a JWT (or the admin token) from `?token=`, a `bearer.<token>`
 * WebSocket subprotocol (both usable from a browser) or `Authorization: Bearer`; refused with
 * 401 before the upgrade. Answers with APP_SUBPROTOCOL when offered, else with the bearer one. JSON text frames by default, msgpack binary frames with `?enc=msgpack`.
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
    /** sockets on the node and per user, refused at the upgrade past them (src/transport/app-limits.ts) */
    limits?: AppSocketLimits;
    metrics?: AppGatewayMetrics;
    /** names each connection (`conn` in its log lines; with the request id, the command's request id) */
    requestIds?: RequestIds;
    /** each socket's request budget (`TIER_APP_REQUESTS_PER_SEC`, `TIER_APP_REQUESTS_BURST`); absent: none */
    requestRate?: RateLimit;
  },
): void {
  const { auth, log, metrics } = deps;
  const rate = deps.requestRate;
  /** A request over the socket's budget: answered `rate_limited`; past the burst of refusals in 10 s, the socket closed 4004. */
  const refuseRate = (link: UwsAppLink, session: AppSession, verdict: 'refuse' | 'close', id: number | undefined): void => {
    session.rejectRaw(new TierError('rate_limited', `more than ${rate!.ratePerSec} requests a second on this socket (a burst of ${rate!.rateBurst}): send it again later`, { ...(id !== undefined ? { ref: id } : {}), retryAfterMs: 1_000 }));
    if (verdict === 'close') link.closeAfterReplies(CloseCode.rateLimited, 'rate_limited');
  };
  const sessionDeps: AppSessionDeps = { ...deps.session, feeds: metrics ? countedFeeds(deps.feeds, metrics) : deps.feeds };
  let connections = 0;
  /** sockets opened: counted so an upgrade can tell whether it opened one */
  let opens = 0;
  const sent = metrics ? (op: string, frames: number) => metrics.appFramesOut(op, frames) : () => {};
  const authFailures = refusalLog(log, 'app auth failures, not logged');
  /** `foreign`: the upgrade came from a page of another site (another-site.ts), where an admin token is refused unchecked. */
  const tokenPrincipal = (token: string, remote: string, foreign: boolean): Promise<Principal> =>
    foreign && adminShaped(token) ? Promise.reject(new AuthError('unauthorized', 'an admin token is not taken from a page of another site')) : auth.fromToken(token, remote);
  /** The principal of a bearer subprotocol; one without a token, or not decoding, refused as such. */
  const bearerPrincipal = (bearer: string, remote: string, foreign: boolean): Promise<Principal> => {
    const token = bearerToken(bearer);
    if (token) return tokenPrincipal(token, remote, foreign);
    return Promise.reject(new AuthError('unauthorized', bearer.startsWith('bearer64.') ? 'subprotocol bearer64.<token>: not the unpadded base64url of a token' : 'subprotocol bearer.<token>: no token'));
  };
  const limitRefusals = refusalLog(log, 'app upgrades refused for the socket limits, not logged');
  /** Refused before the socket exists: the node full or near its memory limit is `busy` (503, Retry-After), the user at its bound `limit_exceeded` (422). */
  const refuse = (res: HttpResponse, state: { aborted: boolean }, reason: AppRefusal, who: string, remote: string) => {
    const code = reason === 'user' ? 'limit_exceeded' : 'busy';
    metrics?.appRefused(code);
    limitRefusals.info(remote, { code, sub: who, remote }, 'app upgrade refused');
    send(res, state, errorReply(new TierError(code, deps.limits?.message(reason) ?? code)), deps.writes);
  };
  app.ws<AppSocketData>('/app/v1', {
    // past the limit a message is still read, to answer frame_too_large and close 1009 with a
    // reason; only beyond this hard cap does uWS drop the connection without a close frame
    maxPayloadLength: deps.maxMessageBytes * 4,
    maxBackpressure: deps.maxBackpressure,
    // a subscriber that cannot keep up is closed (it reconnects and reloads) rather than fed gaps:
    // uWS closes it on a dropped live event, UwsAppLink.corked on a dropped answer, reload or catch-up
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
      const remote = callerAddress(res, req);
      const foreign = fromAnotherSite((name) => req.getHeader(name));
      const query = new URLSearchParams(req.getQuery() ?? '');
      const asked = query.get('enc');
      // a misspelt encoding would have the app read JSON it did not ask for
      // refusals at the end of the turn: an upgrade pipelined behind one then closes the connection
      if (asked !== null && asked !== 'json' && asked !== 'msgpack') return send(res, state, errorReply(new TierError('invalid_field', 'enc: must be json or msgpack', { field: 'enc' })), deps.writes);
      const enc: AppEncoding = asked === 'msgpack' ? 'msgpack' : 'json';
      const offered = protocolHeader.split(',').map((s) => s.trim());
      const bearer = offered.find(isBearerProtocol);
      // the fixed name when offered: echoing the bearer one sends the token back in a header
      const answer = offered.includes(APP_SUBPROTOCOL) ? APP_SUBPROTOCOL : (bearer ?? '');
      const authorization = req.getHeader('authorization');
      // where the token comes from, first found: the query, a bearer subprotocol, the header. One
      // given empty or not decoding is refused as such, never passed over for the next (the
      // Authorization header then silently decided, and the refusal named it)
      const inQuery = query.get('token');
      const principal =
        inQuery !== null
          ? inQuery === ''
            ? Promise.reject(new AuthError('unauthorized', '?token= is empty'))
            : tokenPrincipal(inQuery, remote, foreign)
          : bearer !== undefined
            ? bearerPrincipal(bearer, remote, foreign)
            : auth.fromHeader(authorization, remote);
      principal.then(
        (p) => {
          if (state.aborted) return;
          const refused = deps.limits?.tryOpen(p);
          if (refused) return refuse(res, state, refused, p.kind === 'admin' ? 'admin' : p.sub, remote);
          const before = opens;
          res.cork(() => res.upgrade<AppSocketData>({ principal: p, enc, link: null, counted: deps.limits !== undefined, remote }, key, answer, extensions, context));
          // uWS opens the socket inside upgrade (its user data a copy of ours); one it did not open never closes
          if (opens === before) deps.limits?.closed(p);
        },
        (err: unknown) => {
          const e = asTierError(err);
          authFailures.info(remote, { code: e.code, remote }, 'app auth failed');
          send(res, state, errorReply(e), deps.writes);
        },
      );
    },

    open: (ws) => {
      opens++;
      const data = ws.getUserData();
      const link = new UwsAppLink(ws, data.enc, deps.writes, Math.floor(deps.maxBackpressure / 2), sent);
      data.link = link;
      const who = data.principal.kind === 'admin' ? 'admin' : data.principal.sub;
      const n = ++connections;
      link.session = new AppSession(data.principal, link, sessionDeps, `app:${who}:${n}`, deps.requestIds?.next() ?? `app-${n}`);
      deps.sockets?.opened(link, data.principal);
      metrics?.appConnected();
    },

    message: (ws, message, isBinary) => {
      const link = ws.getUserData().link;
      const session = link?.session;
      if (!link || !session) return;
      // every message spends the socket's budget, a malformed one too: one socket sent 3,200
      // sub/unsub pairs a second, 42 % of a core and other sockets' pings 180 ms late (review "recovery")
      const verdict = rate ? spend((link.requests ??= fullBucket(rate, monotonicMs())), monotonicMs(), rate) : 'pass';
      try {
        const request = decodeAppRequest(message, isBinary, deps.maxMessageBytes, deps.commandTimeoutMaxMs);
        metrics?.appFrameIn(request.op);
        if (verdict !== 'pass') return refuseRate(link, session, verdict, 'id' in request ? request.id : undefined);
        session.tell({ type: 'request', request });
      } catch (err) {
        metrics?.appFrameIn('unknown');
        const e = asTierError(err);
        if (e.code === 'internal') log.error({ err }, 'app message handling failed');
        session.rejectRaw(e);
        if (e.code === 'frame_too_large') link.closeAfterReplies(CloseCode.tooLarge, 'frame_too_large');
        else if (verdict === 'close') link.closeAfterReplies(CloseCode.rateLimited, 'rate_limited');
      }
    },

    drain: (ws) => ws.getUserData().link?.drained(),

    // uWS answers a ping by itself: each one spends the socket's budget as a request does, so a
    // flood is closed 4004 (a hub's 843,000 a second had cost a core: review "conn")
    ping: (ws) => {
      const link = ws.getUserData().link;
      if (link && rate && spend((link.requests ??= fullBucket(rate, monotonicMs())), monotonicMs(), rate) === 'close') link.closeAfterReplies(CloseCode.rateLimited, 'rate_limited');
    },

    close: (ws, code) => {
      const data = ws.getUserData();
      // every close (by the app, a revocation, a drain, backpressure, an error) passes here once
      if (data.counted) {
        data.counted = false;
        deps.limits?.closed(data.principal);
      }
      const link = data.link;
      if (!link) return;
      // uWS drops a socket past its backpressure limit without a close frame (1006) and with its
      // buffer already freed: a subscribed socket closed that way is counted as such, and one closed
      // for an answer dropped (4009) whatever it subscribed
      metrics?.appClosed((code === 1006 && link.joined) || code === CloseCode.backpressure);
      link.closed();
      deps.sockets?.closed(link, data.principal);
      link.session?.tell({ type: 'closed' });
    },
  });
}

/** Each session's `acquire`/`release` of a home is one subscription taken or given back. */
function countedFeeds(feeds: HomeFeeds, metrics: AppGatewayMetrics): AppSessionDeps['feeds'] {
  return {
    acquire: (homeId) => {
      metrics.subscribed(1);
      feeds.acquire(homeId);
    },
    release: (homeId) => {
      metrics.subscribed(-1);
      feeds.release(homeId);
    },
    position: (homeId) => feeds.position(homeId),
    catchUp: (homeId, since, subscriber, carry) => feeds.catchUp(homeId, since, subscriber, carry),
  };
}
