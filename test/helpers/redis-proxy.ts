import { createServer, Socket, type Server } from 'node:net';
import { freePort } from '../../load/harness/index.js';

/**
 * A TCP proxy in front of a redis-server that plays what happens to a node's Redis connection at
 * the worst moment, right after the history's append of a home has gone through to Redis (Redis
 * ran it; the node has not heard so):
 * - `die`: the replies are held back and every connection dropped 50 ms later; connections are
 *   then refused until `revive` (Redis killed);
 * - `hold`: the replies are held back until `release` (they reach the node late: a node that froze,
 *   or a network that stalled).
 */
export class RedisProxy {
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;
  private refusing = false;
  private armed: { key: string; then: 'die' | 'hold' } | null = null;
  private holding = false;
  /** replies held back, per connection */
  private held = new Map<Socket, Buffer[]>();

  private constructor(
    readonly port: number,
    private readonly target: number,
  ) {
    this.server = createServer((client) => this.accept(client));
  }

  static async start(target: number): Promise<RedisProxy> {
    const proxy = new RedisProxy(await freePort(), target);
    await new Promise<void>((resolve) => proxy.server.listen(proxy.port, '127.0.0.1', resolve));
    return proxy;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Arms the proxy: once an append to this home's history has gone through, `then` happens. */
  afterAppendOf(homeId: string, then: 'die' | 'hold'): void {
    this.armed = { key: `{home:${homeId}}:hist`, then };
  }

  /** Replies are being held back (`hold`, or `die` before the drop). */
  get isHolding(): boolean {
    return this.holding;
  }

  get dead(): boolean {
    return this.refusing;
  }

  revive(): void {
    this.refusing = false;
  }

  /** Sends the replies held back, and every later one as it comes. */
  release(): void {
    this.holding = false;
    for (const [client, chunks] of this.held) for (const c of chunks) client.write(c);
    this.held.clear();
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    if (this.refusing) return void client.destroy();
    const upstream = new Socket();
    upstream.connect(this.target, '127.0.0.1');
    this.sockets.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk);
      const armed = this.armed;
      if (armed === null || !chunk.includes(armed.key)) return;
      this.armed = null;
      this.holding = true;
      if (armed.then === 'die') setTimeout(() => this.die(), 50);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!this.holding) return void client.write(chunk);
      const chunks = this.held.get(client) ?? [];
      chunks.push(chunk);
      this.held.set(client, chunks);
    });
  }

  private die(): void {
    this.refusing = true;
    this.holding = false;
    this.held.clear();
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }
}
