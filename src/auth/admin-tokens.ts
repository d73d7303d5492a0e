import { sameBytes } from './constant-time.js';

/**
 * The admin token, and those accepted beside it during a rotation (ADMIN_TOKENS_ACCEPTED). One
 * check for every place that takes it (the API, the admin port's debug routes, the BullMQ
 * dashboard), so a rotation lets in the same tokens everywhere.
 */
export class AdminTokens {
  private readonly current: Buffer;
  private readonly accepted: Buffer[];

  constructor(
    current: string,
    accepted: readonly string[] = [],
    /** told of each token let in by `accepted`: an operator sees when the old one is no longer used */
    private readonly onAccepted?: () => void,
  ) {
    this.current = Buffer.from(current);
    this.accepted = accepted.map((t) => Buffer.from(t));
  }

  /** Every token taken, the current one first: keys made under the admin token are checked against each. */
  get all(): readonly Buffer[] {
    return [this.current, ...this.accepted];
  }

  /** The current token: what new keys made under the admin token use (the dashboard's cookies). */
  get signing(): Buffer {
    return this.current;
  }

  matches(given: string): boolean {
    const b = Buffer.from(given);
    if (sameBytes(b, this.current)) return true;
    if (!this.accepted.some((t) => sameBytes(b, t))) return false;
    this.onAccepted?.();
    return true;
  }
}
