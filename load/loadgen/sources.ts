import { readFileSync } from 'node:fs';

/**
 * The source (address, port) of each connection a worker opens: round-robin over its loopback
 * addresses, with explicit ports below the kernel's ephemeral range, this worker's slice of them,
 * so no two workers race for a port and the kernel never searches for one.
 */
export class SourcePorts {
  private range: { lo: number; hi: number } | null = null;
  private portCursor = 0;
  private addressCursor = 0;

  constructor(
    private readonly addresses: readonly string[],
    slice: { index: number; count: number } = { index: 0, count: 1 },
  ) {
    if (addresses.length === 0) return;
    let ephemeralLow = 32_768;
    try {
      ephemeralLow = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    } catch {
      // not Linux: keep the usual default
    }
    const lo = 1_024;
    const hi = ephemeralLow - 1;
    if (hi - lo < 4_096) return; // too few: let the kernel choose
    const size = Math.floor((hi - lo + 1) / slice.count);
    this.range = { lo: lo + slice.index * size, hi: lo + (slice.index + 1) * size - 1 };
    this.portCursor = Math.floor(Math.random() * size);
  }

  /** The next source; undefined: the system's choice. */
  next(): { address: string; port?: number } | undefined {
    if (this.addresses.length === 0) return undefined;
    const address = this.addresses[this.addressCursor++ % this.addresses.length]!;
    if (!this.range) return { address };
    return { address, port: this.range.lo + (this.portCursor++ % (this.range.hi - this.range.lo + 1)) };
  }
}

/** Local ports taken by someone else (or in TIME_WAIT): a connect fails with these; try the next port at once. */
export const PORT_TAKEN: ReadonlySet<string> = new Set(['EADDRINUSE', 'EADDRNOTAVAIL', 'EACCES']);
