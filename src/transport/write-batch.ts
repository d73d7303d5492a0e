/**
 * Writes deferred to the end of the event-loop turn, one cork per socket.
 *
 * This uWS build (v20.30) cannot cork a socket while another one is corked: a write made inside
 * the callback of socket A to socket B goes out uncorked, one `sendto` per status line, header and
 * body piece (23 for a JSON answer). A command's answer is produced exactly there: inside the hub
 * socket's message callback. Queued here and flushed by `setImmediate`, every socket gets one
 * corked write per turn, and several frames for one socket in one turn leave in one write.
 */
export class WriteBatch {
  private pending: Array<() => void> = [];
  private scheduled = false;

  constructor(private readonly onError: (err: unknown) => void) {}

  /** Runs `write` at the end of this turn, after every uWS callback of the turn has returned. */
  defer(write: () => void): void {
    this.pending.push(write);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  /**
   * Runs everything queued now (also used before a close, so queued frames precede it), and what
   * that queues in turn: frames handled at the end of the turn (the hub gateway's inbox) write here.
   */
  readonly flush = (): void => {
    // still set while it runs: what the writes defer is run by this loop, not by another turn
    this.scheduled = true;
    while (this.pending.length > 0) {
      const writes = this.pending;
      this.pending = [];
      for (const write of writes) {
        try {
          write();
        } catch (err) {
          this.onError(err);
        }
      }
    }
    this.scheduled = false;
  };
}
