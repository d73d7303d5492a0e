/**
 * The Redis import's record of one backup's import (src/data-redis-import.ts), kept in the
 * cluster's Redis: how far runs of the file have gone, so a rerun writes only what no run wrote.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { TierError } from './errors.js';

/** Creates the record unless it exists (ARGV 4.. its fields) and makes ARGV[1] its run; refuses one of another plan or size. */
const OPEN = `
local made = 0
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'plan', ARGV[2], 'units', ARGV[3], 'done', '0', unpack(ARGV, 4))
  made = 1
elseif redis.call('HGET', KEYS[1], 'plan') ~= ARGV[2] or redis.call('HGET', KEYS[1], 'units') ~= ARGV[3] then
  return {-1, redis.call('HGETALL', KEYS[1])}
end
if redis.call('HEXISTS', KEYS[1], 'finished') == 0 then redis.call('HSET', KEYS[1], 'run', ARGV[1]) end
return {made, redis.call('HGETALL', KEYS[1])}`;

/** Sets the field/value pairs ARGV[2..] while ARGV[1] is the record's run; answers 0 when another run took it over. */
const ADVANCE = `
if redis.call('HGET', KEYS[1], 'run') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 1`;

/** What a run finds in the record when it opens it. */
export interface RecordState {
  /** made by this run: no run of the file came before it */
  made: boolean;
  /** units gone through, in order; unless `made`, the next is the one a run stopped in */
  done: number;
  /** when the first run began (ms) */
  started: number;
  /** when the last unit was gone through (ms), or null */
  finished: number | null;
  /** the NOT IMPORTED lines of units gone through, by unit */
  skipped: Map<number, string>;
}

/**
 * The hash `<prefix>import:<digest>` (the digest names the backup's records) with `file`, `started`
 * (ms), `plan` and `units` (the order and number of units), `done` (units gone through, in order),
 * `run` (the run writing), `skip:<i>` (unit i's NOT IMPORTED line) and, once every unit is gone
 * through, `finished` (ms). No TTL: a rerun months later still finds it.
 *
 * Order: a unit's writes first, then its count (with its line, in one HSET); never the other way.
 * So a run killed at any point has written nothing past unit `done`, and of that unit possibly
 * part: the next run takes it as cut short. A second run takes the record over at `open`, and the
 * first stops at its next count: two runs never count past each other.
 */
export class ImportRecord {
  private readonly run = randomUUID();

  constructor(
    private readonly client: Redis,
    readonly key: string,
    /** called before each write of the record (the import's test hook) */
    private readonly beforeWrite: () => Promise<void>,
  ) {}

  /** Creates the record, or takes over the one of an earlier run; refuses one of another `plan` or number of `units`. */
  async open(file: string, plan: number, units: number): Promise<RecordState> {
    await this.beforeWrite();
    const [made, flat] = (await this.client.eval(OPEN, 1, this.key, this.run, String(plan), String(units), 'file', file, 'started', String(Date.now()))) as [number, string[]];
    const fields = new Map<string, string>();
    for (let i = 0; i + 1 < flat.length; i += 2) fields.set(flat[i]!, flat[i + 1]!);
    if (made === -1) {
      throw new TierError(
        'unsupported_version',
        `this file's import (record ${this.key}) was begun by a version that writes it in another order (plan ${fields.get('plan')}, ${fields.get('units')} units): finish it with that version, or delete the record to start again`,
      );
    }
    const skipped = new Map<number, string>();
    for (const [field, line] of fields) if (field.startsWith('skip:')) skipped.set(Number(field.slice(5)), line);
    const finished = fields.get('finished');
    return { made: made === 1, done: Number(fields.get('done')), started: Number(fields.get('started')), finished: finished === undefined ? null : Number(finished), skipped };
  }

  /** Counts the units before `done` as gone through, the last of them with its NOT IMPORTED line. */
  async advance(done: number, line: string | null): Promise<void> {
    await this.set('done', String(done), ...(line === null ? [] : [`skip:${done - 1}`, line]));
  }

  async finish(): Promise<void> {
    await this.set('finished', String(Date.now()));
  }

  private async set(...pairs: string[]): Promise<void> {
    await this.beforeWrite();
    if ((await this.client.eval(ADVANCE, 1, this.key, this.run, ...pairs)) !== 1) {
      throw new TierError('busy', `another run of this file's import took it over (record ${this.key}): this one stops`);
    }
  }
}
