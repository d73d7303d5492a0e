import { createServer, Socket, type Server } from 'node:net';
import { freePort } from '../../load/harness/index.js';

/**
 * A TCP proxy that cuts one client off its server (a node partitioned from NATS while the others
 * keep it): `cut` drops every connection and refuses new ones until `mend`.
 */
export class TcpCut {
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;
  private refusing = false;

  private constructor(
    readonly port: number,
    private readonly target: number,
  ) {
    this.server = createServer((client) => this.accept(client));
  }

  static async start(target: number): Promise<TcpCut> {
    const proxy = new TcpCut(await freePort(), target);
    await new Promise<void>((resolve) => proxy.server.listen(proxy.port, '127.0.0.1', resolve));
    return proxy;
  }

  cut(): void {
    this.refusing = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  mend(): void {
    this.refusing = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    if (this.refusing) return void client.destroy();
    const upstream = new Socket();
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        this.sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    upstream.connect(this.target, '127.0.0.1');
    client.pipe(upstream);
    upstream.pipe(client);
  }
}
