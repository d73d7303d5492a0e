import { HubClientError } from './handshake.js';

/**
 * A hub's sequenced frames (report, event, devices) from sending until the server acknowledges
 * them: numbering, cumulative acks, refusals, and what to send again after a reconnect or a
 * `sequence_gap`. Every frame's promise settles once: resolved with its sequence number on the
 * ack, rejected when the server refuses it or the socket closes (the frame stays queued).
 */

interface Outgoing {
  seq: number;
  bytes: Buffer;
  settled: boolean;
  resolve: (seq: number) => void;
  reject: (err: Error) => void;
}

export class Outbox {
  private lastSeq = 0;
  private ackedSeq = 0;
  private readonly unacked: Outgoing[] = [];
  /** the sequence a `sequence_gap` resend started from, until an ack moves past it */
  private gapResentFrom = 0;

  /** The last sequence number assigned; the next frame gets `seq + 1`. */
  get seq(): number {
    return this.lastSeq;
  }

  /** The highest sequence number the server acknowledged in this boot. */
  get acked(): number {
    return this.ackedSeq;
  }

  get size(): number {
    return this.unacked.length;
  }

  /** Numbers a frame, queues its bytes from `encode(seq)` and returns them with the promise of its ack. */
  add(encode: (seq: number) => Buffer): { bytes: Buffer; acked: Promise<number> } {
    const seq = ++this.lastSeq;
    const bytes = encode(seq);
    const acked = new Promise<number>((resolve, reject) => {
      this.unacked.push({ seq, bytes, settled: false, resolve, reject });
    });
    return { bytes, acked };
  }

  /** The welcome's `s`: the server has everything up to it; numbering continues after both. */
  resume(s: number): void {
    this.ack(s);
    this.lastSeq = Math.max(this.lastSeq, s);
  }

  ack(s: number): void {
    if (s > this.ackedSeq) {
      this.ackedSeq = s;
      this.gapResentFrom = 0;
    }
    while (this.unacked.length > 0 && this.unacked[0]!.seq <= s) settle(this.unacked.shift()!, null);
  }

  /** The bytes of every queued frame from `fromSeq` on, in order. */
  *from(fromSeq: number): Iterable<Buffer> {
    for (const o of this.unacked) if (o.seq >= fromSeq) yield o.bytes;
  }

  /** Every queued frame from `fromSeq` on, in order, with its number. */
  *entriesFrom(fromSeq: number): Iterable<{ seq: number; bytes: Buffer }> {
    for (const o of this.unacked) if (o.seq >= fromSeq) yield o;
  }

  /** True while frame `seq` waits for its ack. */
  holds(seq: number): boolean {
    return this.unacked.some((o) => o.seq === seq);
  }

  /** A `sequence_gap` naming `ref`: true the first time (resend from it), false until an ack moves past it. */
  gapAt(ref: number): boolean {
    if (this.gapResentFrom === ref) return false;
    this.gapResentFrom = ref;
    return true;
  }

  /** The server refused frame `seq`: its caller learns why; the frame stays queued for a resend. */
  refused(seq: number, err: HubClientError): void {
    const o = this.unacked.find((x) => x.seq === seq);
    if (o) settle(o, err);
  }

  /** The socket closed: every pending caller learns the outcome is unknown; frames stay queued. */
  closed(err: () => Error): void {
    for (const o of this.unacked) settle(o, err());
  }
}

function settle(o: Outgoing, err: Error | null): void {
  if (o.settled) return;
  o.settled = true;
  if (err) o.reject(err);
  else o.resolve(o.seq);
}
