import type { Redis } from 'ioredis';
import { LuaScript, RedisKeys } from '../redis.js';
import type { SecretRecord } from './secret-record.js';

/**
 * KEYS the loss note, the secrets record; ARGV a loss's note, then the note and the salt the node
 * read ('' for none): written only while both are still those, so an acceptance or a restore since
 * is never written over (review "diff31").
 */
const NOTE_LOSS = new LuaScript(`local v = redis.call('GET', KEYS[1]) or ''
local salt = redis.call('HGET', KEYS[2], 'salt') or ''
if v == ARGV[2] and salt == ARGV[3] then redis.call('SET', KEYS[1], ARGV[1]) end
return 1`);

/** KEYS the loss note; ARGV the salt: an operator's bare `accepted` becomes `accepted:<salt>`. */
const NOTE_ACCEPTED = new LuaScript(`if redis.call('GET', KEYS[1]) == 'accepted' then redis.call('SET', KEYS[1], 'accepted:' .. ARGV[1]) end
return 1`);

/** KEYS the loss note; ARGV the note read: deleted while it is still that one. */
const CLEAR_NOTE = new LuaScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1`);

/** The field of the record's salt; the other fields are named after the secrets. */
const SALT = 'salt';

/**
 * The record in one Redis hash, `<prefix>cluster:secrets` (one key: runs unchanged on Redis
 * Cluster). Firsts are `HSETNX`, so two nodes starting at once on an empty record cannot both win.
 * The client is shared (the control connection): closing it is its owner's business.
 */
export class RedisSecretRecord implements SecretRecord {
  private readonly key: string;
  /** `<prefix>cluster:data-lost`: a loss's note (when, and the salt before it) or an operator's acceptance; absent from the data a backup restores */
  private readonly lostKey: string;
  readonly where: string;

  constructor(
    private readonly client: Redis,
    options: { keys?: RedisKeys } = {},
  ) {
    const keys = options.keys ?? new RedisKeys();
    this.key = keys.single('cluster:secrets');
    this.lostKey = keys.single('cluster:data-lost');
    this.where = `Redis key ${this.key}`;
  }

  async salt(fresh: string): Promise<string> {
    await this.client.hsetnx(this.key, SALT, fresh);
    const salt = await this.client.hget(this.key, SALT);
    if (salt === null) throw new Error(`${this.key}: the salt just recorded is gone`);
    return salt;
  }

  async claim(fields: Readonly<Record<string, string>>): Promise<Record<string, string>> {
    const batch = this.client.multi();
    for (const [name, value] of Object.entries(fields)) batch.hsetnx(this.key, name, value);
    await batch.exec();
    return this.read();
  }

  async replace(fields: Readonly<Record<string, string>>): Promise<void> {
    if (Object.keys(fields).length > 0) await this.client.hset(this.key, fields);
  }

  async dataMark(): Promise<{ salt?: string; note?: string }> {
    const [salt, note] = await Promise.all([this.client.hget(this.key, SALT), this.client.get(this.lostKey)]);
    return { ...(salt !== null ? { salt } : {}), ...(note !== null ? { note } : {}) };
  }

  async noteDataLost(note: string, seen: { salt?: string; note?: string }): Promise<void> {
    await NOTE_LOSS.run(this.client, [this.lostKey, this.key], [note, seen.note ?? '', seen.salt ?? '']);
  }

  async noteAccepted(salt: string): Promise<void> {
    await NOTE_ACCEPTED.run(this.client, [this.lostKey], [salt]);
  }

  async clearDataLost(note: string): Promise<void> {
    await CLEAR_NOTE.run(this.client, [this.lostKey], [note]);
  }

  async read(): Promise<Record<string, string>> {
    return Object.assign(Object.create(null) as Record<string, string>, await this.client.hgetall(this.key));
  }
}
