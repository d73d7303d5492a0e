import type { HubRecord } from '../ports/hub-registry/hub-registry.js';

/**
 * Frames a socket may send while its admission is still being decided (a hub sends its hello and
 * waits for the welcome): held, and handled once it is admitted, so they get the answers they get
 * from a session. More, or more bytes in all than two frames may have, and it is closed: the
 * sender is not authenticated yet, and up to TIER_MAX_PENDING_UPGRADES of them may wait at once.
 */
const MAX_HELD_FRAMES = 8;
const EMPTY = new Uint8Array(0);

/** A frame received before the session started: its bytes, and whether it came as binary. */
export interface HeldFrame {
  bytes: Uint8Array;
  binary: boolean;
}

/**
 * The hub sockets upgraded before their admission was decided (cluster mode, where the registry
 * and nonces answer a turn later: see the hub gateway). The decision goes from the upgrade to its
 * `open`, which uWS calls inside `res.upgrade`; then each socket's frames wait here until it
 * settles. Kept apart from the sockets and their links: a property on every uWS socket grew its
 * property array by 24 B, a field on every link 8 B, while only the sockets being admitted need it.
 */
export class AdmittingHubs<Link> {
  private deciding: Promise<HubRecord> | null = null;
  private readonly held = new Map<Link, Array<Uint8Array | null>>();
  /** held for a frame over the limit instead of its bytes: it gets `frame_too_large` whatever they are */
  private readonly oversize: Uint8Array;
  readonly maxHeldBytes: number;

  constructor(private readonly maxFrameBytes: number) {
    this.oversize = new Uint8Array(maxFrameBytes + 1);
    this.maxHeldBytes = 2 * maxFrameBytes;
  }

  /** What a socket closed for holding too much is told. */
  get limit(): string {
    return `at most ${MAX_HELD_FRAMES} frames and ${this.maxHeldBytes} bytes before the welcome`;
  }

  /**
   * Runs `upgrade` with `decision` handed to the `open` it calls. False when no `open` took it
   * (no socket came of the upgrade): the decision is then dropped, its failure included.
   */
  upgrade(decision: Promise<HubRecord>, upgrade: () => void): boolean {
    let taken = false;
    this.deciding = decision;
    try {
      upgrade();
    } finally {
      taken = this.deciding === null;
      this.deciding = null;
      if (!taken) decision.catch(() => {});
    }
    return taken;
  }

  /** In `open`: the decision its upgrade handed over, now awaited for `link`; null when none came along. */
  take(link: Link): Promise<HubRecord> | null {
    const decision = this.deciding;
    this.deciding = null;
    if (decision) this.held.set(link, []);
    return decision;
  }

  /** True while `link`'s admission is being decided. */
  has(link: Link): boolean {
    return this.held.has(link);
  }

  /** Holds a frame of a socket being admitted; false past the bound (close it). */
  hold(link: Link, bytes: Uint8Array, binary: boolean): boolean {
    const held = this.held.get(link);
    if (!held) return false;
    const frame = !binary ? null : bytes.length > this.maxFrameBytes ? this.oversize : Buffer.from(bytes);
    let size = frame === this.oversize ? 0 : (frame?.length ?? 0);
    for (const f of held) if (f !== this.oversize) size += f?.length ?? 0;
    if (held.length >= MAX_HELD_FRAMES || size > this.maxHeldBytes) return false;
    held.push(frame);
    return true;
  }

  /** The decision came: the frames `link` sent meanwhile, in order (a text frame as empty, not binary); it is forgotten. */
  release(link: Link): HeldFrame[] {
    const held = this.held.get(link) ?? [];
    this.held.delete(link);
    return held.map((f) => (f === null ? { bytes: EMPTY, binary: false } : { bytes: f, binary: true }));
  }
}
