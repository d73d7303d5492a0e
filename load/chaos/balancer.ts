import { createServer, connect, type Server, type Socket } from 'node:net';
import type { ChaosCluster } from './cluster.js';
import { bump, counts } from './ledger.js';
import type { Random } from './random.js';

/**
 * A TCP load balancer in front of the nodes, as a Kubernetes Service is: each new connection goes
 * to a node that is up (in rotation: not stopping, not down), chosen at random, and stays there
 * until either side closes. The apps connect through it, so an app whose node goes reconnects to
 * whichever node it lands on, usually another, and recovers there.
 */
export class Balancer {
  private constructor(
    private readonly server: Server,
    private readonly sockets: Set<Socket>,
    /** connections it made, by node id */
    readonly byNode: Record<string, number>,
    readonly port: number,
  ) {}

  static start(cluster: ChaosCluster, rng: Random): Promise<Balancer> {
    const sockets = new Set<Socket>();
    const byNode = counts();
    const server = createServer((client) => {
      const node = rng.pick(cluster.up());
      if (!node) return void client.destroy();
      bump(byNode, node.id);
      const upstream = connect(node.port, '127.0.0.1');
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.setNoDelay(true);
        // one side gone: the other goes too, as a balancer's proxied connection does
        s.on('close', () => {
          sockets.delete(s);
          client.destroy();
          upstream.destroy();
        });
        s.on('error', () => {});
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        resolve(new Balancer(server, sockets, byNode, (server.address() as { port: number }).port));
      });
    });
  }

  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
