import type { NatsBus } from '../ports/bus/bus-nats.js';

/**
 * What a failed start attempt leaves to the next: the bus, once NATS answered, so a node waiting
 * for Redis keeps one NATS connection instead of opening and closing one per attempt. `close` ends
 * it when the start gives up or is stopped; a bus kept after that is closed at once.
 */
export class StartHold {
  private bus: NatsBus | undefined;
  private closed = false;

  /** The kept bus if it is still connected (else it is closed and none is given). */
  async take(): Promise<NatsBus | undefined> {
    const bus = this.bus;
    this.bus = undefined;
    if (bus && !bus.connected) {
      await bus.close();
      return undefined;
    }
    return bus;
  }

  async keep(bus: NatsBus): Promise<void> {
    if (this.closed) await bus.close();
    else this.bus = bus;
  }

  async close(): Promise<void> {
    this.closed = true;
    const bus = this.bus;
    this.bus = undefined;
    await bus?.close();
  }
}
