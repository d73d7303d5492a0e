import { MemoryDirectory } from '../../src/ports/directory/directory-memory.js';
import type { HubClaim } from '../../src/ports/directory/directory.js';

/** A directory whose claims wait, once `hold()` is called, until `open()`: a hello waits, and frames fill the session's mailbox behind it. */
export class GatedDirectory extends MemoryDirectory {
  private gate: Promise<void> = Promise.resolve();
  open: () => void = () => {};
  hold(): void {
    this.gate = new Promise((r) => (this.open = r));
  }
  override async claim(hubId: string, node: string, ...rest: unknown[]): Promise<HubClaim> {
    await this.gate;
    return (super.claim as (...a: unknown[]) => Promise<HubClaim>)(hubId, node, ...rest);
  }
}
