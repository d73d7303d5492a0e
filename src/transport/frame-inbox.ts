/** What `FrameInbox.push` tells the caller to do. */
export type InboxPush = 'first' | 'queued' | 'full';

/**
 * Frames received in one event-loop turn, kept to be handled together at its end (see the hub
 * gateway), with their owners: a flat array of pairs, no object per frame. Bounded in bytes: once
 * past `maxBytes` the caller is told to handle what it holds at once.
 */
export class FrameInbox<Owner> {
  private entries: Array<Owner | Uint8Array | null> = [];
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  /** Keeps `frame` (null: a frame that is refused whatever its bytes); `first`: schedule the turn's end. */
  push(owner: Owner, frame: Uint8Array | null, size: number): InboxPush {
    this.entries.push(owner, frame);
    this.bytes += size;
    if (this.entries.length === 2) return 'first';
    return this.bytes > this.maxBytes ? 'full' : 'queued';
  }

  /** Everything held, in arrival order, as pairs (owner, frame); the inbox starts empty again. */
  take(): ReadonlyArray<Owner | Uint8Array | null> {
    const entries = this.entries;
    this.entries = [];
    this.bytes = 0;
    return entries;
  }
}
