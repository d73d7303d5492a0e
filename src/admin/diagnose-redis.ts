/** What diagnose judges of a Redis's settings and state: persistence, eviction, whether it takes writes now. */
import { ok, type Finding } from './diagnose.js';

const MIB = 1024 ** 2;

/** Redis persistence from `CONFIG GET appendonly` / `save` (undefined: unreadable; save '': no snapshots). */
export function persistenceVerdict(appendonly: string | undefined, save: string | undefined): Finding {
  if (appendonly === 'yes') return ok(`append-only file on${save ? `, snapshots "${save}"` : ''}`);
  const loses = 'hub registrations and their secrets, rules, scenes and shadows';
  if (appendonly === undefined) {
    return { verdict: 'warn', detail: 'could not read the persistence settings (CONFIG refused)', hint: `make sure the Redis persists (appendonly yes): it holds ${loses}` };
  }
  if (save === undefined) {
    return { verdict: 'warn', detail: 'append-only file off; the snapshot settings could not be read', hint: `set appendonly yes (appendfsync everysec): a crash loses what the last snapshot lacks of ${loses}` };
  }
  if (save.trim() !== '') {
    return {
      verdict: 'warn',
      detail: `snapshots only (save "${save}"): a Redis crash loses the writes since the last snapshot`,
      hint: `set appendonly yes (appendfsync everysec) so a crash loses at most a second of ${loses}`,
    };
  }
  return {
    verdict: 'fail',
    detail: 'no persistence (appendonly no, no snapshots): a Redis restart empties it',
    hint: `set appendonly yes (appendfsync everysec): after a restart every hub would be refused, since Redis holds ${loses}`,
  };
}

/** `maxmemory-policy` (undefined: unreadable) against what this tier keeps in Redis. */
export function evictionVerdict(policy: string | undefined, maxmemory?: string): Finding {
  const limit = maxmemory === undefined ? '' : maxmemory === '0' ? ' (maxmemory 0: no limit yet)' : ` (maxmemory ${maxmemory} bytes)`;
  if (policy === 'noeviction') return ok(`maxmemory-policy noeviction${limit}: a full Redis refuses writes instead of deleting keys`);
  const hint = 'CONFIG SET maxmemory-policy noeviction (and in redis.conf), size maxmemory for the data, and keep evictable caches in another Redis';
  if (policy === undefined) return { verdict: 'warn', detail: 'could not read maxmemory-policy', hint };
  const victims = policy.startsWith('volatile-')
    ? 'keys with an expiry: directory entries (hubs seen offline while connected), handshake nonces (replays) and cron leases (a firing run twice)'
    : 'any key: hub registrations and secrets (hubs refused), rules, shadows, directory entries and cron leases';
  return { verdict: 'warn', detail: `maxmemory-policy ${policy}${limit}: at maxmemory Redis deletes ${victims}`, hint };
}

/**
 * Whether Redis takes writes now: a key of its own written (`refusal` null: taken), with INFO
 * memory's figures as the detail. A full Redis (`OOM`) or one whose save failed (`MISCONF`) is
 * reachable and read as healthy while every API write answered 503 (review "diskfull"); judged
 * from INFO alone, a failed manual snapshot without save points, or an evicting Redis at
 * maxmemory, read as refusing writes they took (review "diff12").
 */
export function writesVerdict(refusal: string | null, memory: Record<string, string | undefined>): Finding {
  const room = 'make room: raise maxmemory (or the Redis pod\'s memory) and check what fills it; after a MISCONF, free its disk (Redis takes writes again after its next successful save)';
  const [used, max] = [Number(memory.used_memory), Number(memory.maxmemory)];
  const figures = Number.isFinite(used) && max > 0 ? `${(used / MIB).toFixed(0)} MiB used of maxmemory ${(max / MIB).toFixed(0)} MiB (${Math.round((100 * used) / max)} %)` : null;
  // a user the ACL keeps from the node's own keys fails more than this check (README, ACL SETUSER)
  const acl = 'give the node\'s Redis user the keys of its prefix: ACL SETUSER <user> ~<prefix>* (README, "Managed services with TLS and ACLs")';
  if (refusal !== null) return { verdict: 'fail', detail: `refuses writes: ${refusal.slice(0, 200)}${figures ? `; ${figures}` : ''}`, hint: /^NOPERM\b/.test(refusal) ? acl : room };
  if (figures === null) return ok('takes writes (no maxmemory)');
  // at maxmemory a noeviction Redis refuses writes; an evicting one deletes keys (the eviction check says that)
  if (used >= 0.9 * max && memory.maxmemory_policy === 'noeviction') return { verdict: 'warn', detail: `takes writes; ${figures}: refused at 100 %`, hint: room };
  return ok(`takes writes; ${figures}`);
}
