import type { Redis } from 'ioredis';
import type { Logger } from '../log/logger.js';
import { redisAnswering } from './redis.js';

export interface RedisPingOptions {
  /** @default 5_000 (ms): a PING this often, while the connection is ready and none is waiting */
  intervalMs?: number;
  /** @default 2_000 (ms): a PING without an answer by then marks Redis not answering (the ports' command timeout) */
  timeoutMs?: number;
  log: Logger;
}

/**
 * The hang check of one Redis connection. A hung Redis (stopped, swapping, a blocked event loop)
 * keeps its sockets open, so the connection stays `ready` while every call times out. A PING
 * not answered within `timeoutMs` marks it not answering (one warn line); the answer to that PING
 * or a later one, or a new `ready`, marks it answering again (one info line). The connection is
 * kept, unlike NATS' stale check: a new one to the same hung server would hang the same way.
 */
export class RedisPing {
  #answering = true;
  #waiting = false;
  #since = 0;
  readonly #timer: NodeJS.Timeout;
  readonly #timeoutMs: number;

  constructor(
    private readonly client: Redis,
    private readonly options: RedisPingOptions,
  ) {
    this.#timeoutMs = options.timeoutMs ?? 2_000;
    this.#timer = setInterval(() => this.#ping(), options.intervalMs ?? 5_000);
    this.#timer.unref();
    // a ready check (INFO) was just answered
    client.on('ready', this.#onReady);
  }

  /** False from a PING left unanswered past the timeout until Redis answers again. */
  get answering(): boolean {
    return this.#answering;
  }

  stop(): void {
    clearInterval(this.#timer);
    this.client.off('ready', this.#onReady);
  }

  readonly #onReady = () => this.#set(true);

  #ping(): void {
    // a PING still waiting tells when Redis answers: no second one queued behind it
    if (this.#waiting || this.client.status !== 'ready') return;
    this.#waiting = true;
    const late = setTimeout(() => this.#set(false), this.#timeoutMs);
    late.unref();
    void this.client.ping().then(
      () => this.#set(true),
      // the client's own timeout or a lost connection: not an answer
      () => this.#set(false),
    ).finally(() => {
      clearTimeout(late);
      this.#waiting = false;
    });
  }

  #set(answering: boolean): void {
    if (answering === this.#answering) return;
    this.#answering = answering;
    // a QUIT at the drain waits for a Redis that answers, not for one that hangs
    redisAnswering(answering);
    if (!answering) {
      this.#since = Date.now();
      this.options.log.warn({ timeoutMs: this.#timeoutMs }, 'redis not answering');
    } else this.options.log.info({ silentMs: Date.now() - this.#since }, 'redis answering again');
  }
}
