import type { Redis } from 'ioredis';
import type { RedisProbe } from './ports.js';
import type { RedisKeys } from './redis.js';
import { isRedisRefusal } from '../errors.js';

/**
 * The Redis side of self-diagnosis on an existing connection (the node's control connection):
 * read-only commands, and one key of its own written to see that writes are taken. With the
 * ports' fail-fast client, a question asked while Redis is down rejects at once.
 */
export function redisProbe(client: Redis, options: { keys: RedisKeys; eventStreamMaxLen: number }): RedisProbe {
  const eventsKey = options.keys.single('events');
  const probeKey = options.keys.single('diagnose:write');
  return {
    async writeRefusal() {
      try {
        await client.set(probeKey, String(Date.now()), 'PX', 2_000);
        return null;
      } catch (err) {
        // a refusal (for now, or by the user's ACL) is the answer; the connection down is the redis check's to say
        if (isRedisRefusal(err) || /^NOPERM\b/.test((err as Error).message)) return (err as Error).message;
        throw err;
      }
    },
    async ping() {
      const started = performance.now();
      await client.ping();
      return performance.now() - started;
    },
    async time() {
      const started = performance.now();
      const startedAt = Date.now();
      const [s, us] = await client.time();
      const rttMs = performance.now() - started;
      return { serverMs: Number(s) * 1000 + Number(us) / 1000, localMs: startedAt + rttMs / 2, rttMs };
    },
    async config(name) {
      try {
        const reply = (await client.config('GET', name)) as string[];
        return reply[1];
      } catch (err) {
        // CONFIG renamed or disabled (managed Redis): the caller falls back to INFO
        if (err instanceof Error && /^(ERR|NOPERM)|unknown command/.test(err.message)) return undefined;
        throw err;
      }
    },
    async info(section) {
      return parseInfo(await client.info(section));
    },
    async eventStream() {
      if (options.eventStreamMaxLen <= 0) return null;
      const length = await client.xlen(eventsKey);
      let groups: Array<{ name: string; lag: number | null }> = [];
      if (length > 0) {
        const raw = (await client.xinfo('GROUPS', eventsKey)) as unknown[][];
        groups = raw.map((fields) => {
          const f = pairs(fields);
          const lag = f.get('lag');
          return { name: String(f.get('name')), lag: typeof lag === 'number' ? lag : null };
        });
      }
      return { length, maxLen: options.eventStreamMaxLen, groups };
    },
  };
}

/** `INFO` text (`field:value` lines, `#` section headers) as a map. */
export function parseInfo(text: string): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at <= 0 || line.startsWith('#')) continue;
    out[line.slice(0, at)] = line.slice(at + 1).trim();
  }
  return out;
}

/** A flat [k1, v1, k2, v2…] reply as a map. */
function pairs(fields: unknown[]): Map<string, unknown> {
  const m = new Map<string, unknown>();
  for (let i = 0; i + 1 < fields.length; i += 2) m.set(String(fields[i]), fields[i + 1]);
  return m;
}
