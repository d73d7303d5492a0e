/**
 * Self-diagnosis without a backend: each verdict from what a check reads (a fake /proc, Redis
 * settings, clocks), the runner turning a throw or a hang into `fail`, the checklist the CLI
 * prints, and the reasons readiness gives.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { notReadyReasons } from '../../src/admin/admin-server.js';
import { formatChecklist, isDiagnoseReport, runChecks, type Check } from '../../src/admin/diagnose.js';
import {
  bindingVerdict,
  diskVerdict,
  fdVerdict,
  memoryVerdict,
  loopDelayVerdict,
  parseOpenFileLimit,
  poolVerdict,
  pushSenderVerdict,
  readFdUsage,
  releasesVerdict,
  skewVerdict,
  streamVerdict,
} from '../../src/admin/diagnose-checks.js';
import { evictionVerdict, persistenceVerdict, writesVerdict } from '../../src/admin/diagnose-redis.js';
import { parseInfo } from '../../src/ports/redis-probe.js';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max processes             96365                96365                processes
Max open files            1024                 4096                 files
Max locked memory         8388608              8388608              bytes
`;

/** A procfs directory with `open` entries under fd/ and the given limits text. */
function fakeProc(open: number, limits = LIMITS): string {
  const dir = mkdtempSync(join(tmpdir(), 'hubtier-proc-'));
  mkdirSync(join(dir, 'fd'));
  for (let i = 0; i < open; i++) writeFileSync(join(dir, 'fd', String(i)), '');
  writeFileSync(join(dir, 'limits'), limits);
  return dir;
}

describe('file-descriptor headroom', () => {
  it('reads open descriptors and the soft limit from a procfs directory', async () => {
    expect(await readFdUsage(fakeProc(17))).toEqual({ open: 17, soft: 1024 });
    expect(parseOpenFileLimit(LIMITS.replace('1024                 4096', 'unlimited            unlimited'))).toBe(Infinity);
    expect(() => parseOpenFileLimit('Max processes 1 1 processes')).toThrow(/Max open files/);
  });

  it('warns at 80 % of the soft limit and fails at 95 %', async () => {
    const at = async (open: number) => {
      const u = await readFdUsage(fakeProc(open));
      return fdVerdict(u.open, u.soft, 100).verdict;
    };
    expect(await at(818)).toBe('ok');
    expect(await at(820)).toBe('warn');
    expect(await at(973)).toBe('fail');
    expect(fdVerdict(820, 1024, 100).hint).toMatch(/ulimit -n/);
  });

  it('warns when the limit leaves no room for the hub session limit', () => {
    const f = fdVerdict(50, 1024, 19_000);
    expect(f.verdict).toBe('warn');
    expect(f.detail).toMatch(/TIER_MAX_HUB_SESSIONS \(19000\)/);
    expect(fdVerdict(50, 20_000, 19_000).verdict).toBe('ok');
  });
});

describe('memory against the cgroup limit', () => {
  const MiB = 2 ** 20;
  const HEAP = { heapUsed: 200 * MiB, heapLimit: 1024 * MiB };
  it('says there is no limit, and warns when the node refuses hubs for memory', () => {
    expect(memoryVerdict({ limit: Infinity, unreclaimable: 300 * MiB, ...HEAP }, 0.85, 19_000)).toMatchObject({ verdict: 'ok', detail: expect.stringMatching(/no memory limit/) });
    const shedding = memoryVerdict({ limit: 1024 * MiB, unreclaimable: 880 * MiB, ...HEAP }, 0.85, 1_000);
    expect(shedding.verdict).toBe('warn');
    expect(shedding.detail).toMatch(/880 MiB of the 1024 MiB limit .*\(86 %\).*refused/);
    expect(memoryVerdict({ limit: 1024 * MiB, unreclaimable: 860 * MiB, ...HEAP }, 0.85, 1_000).verdict).toBe('ok');
  });

  it('warns when the limit leaves no room for a burst of TIER_MAX_HUB_SESSIONS reconnects', () => {
    // 100 MiB + 19,000 x 16 KiB = 397 MiB
    const tight = memoryVerdict({ limit: 384 * MiB, unreclaimable: 120 * MiB, ...HEAP }, 0.85, 19_000);
    expect(tight.verdict).toBe('warn');
    expect(tight.detail).toMatch(/TIER_MAX_HUB_SESSIONS \(19000\) = 397 MiB/);
    expect(memoryVerdict({ limit: 2048 * MiB, unreclaimable: 120 * MiB, ...HEAP }, 0.85, 19_000).verdict).toBe('ok');
  });

  it('warns when the heap nears its own limit, which Node sets at half a pod\'s: reached first, and fatal (review "memlimit")', () => {
    const ok = memoryVerdict({ limit: 2048 * MiB, unreclaimable: 1000 * MiB, heapUsed: 800 * MiB, heapLimit: 1024 * MiB }, 0.85, 19_000);
    expect(ok).toMatchObject({ verdict: 'ok', detail: expect.stringMatching(/; heap 800 MiB of its 1024 MiB limit \(78 %; 80 % of V8's, where V8 gives up when collections free little\)$/) });
    const near = memoryVerdict({ limit: 2048 * MiB, unreclaimable: 1000 * MiB, heapUsed: 880 * MiB, heapLimit: 1024 * MiB }, 0.85, 19_000);
    expect(near).toMatchObject({ verdict: 'warn', detail: expect.stringMatching(/^heap 880 MiB .*refused/), hint: expect.stringMatching(/--max-old-space-size/) });
  });
});

describe('redis eviction policy', () => {
  it('accepts noeviction only', () => {
    expect(evictionVerdict('noeviction', '0').verdict).toBe('ok');
    for (const policy of ['allkeys-lru', 'allkeys-lfu', 'allkeys-random', 'volatile-lru', 'volatile-ttl']) {
      const f = evictionVerdict(policy, '1073741824');
      expect(f.verdict, policy).toBe('warn');
      expect(f.hint).toMatch(/noeviction/);
    }
  });

  it('says what each kind of policy would delete', () => {
    expect(evictionVerdict('allkeys-lru').detail).toMatch(/hub registrations/);
    expect(evictionVerdict('volatile-lru').detail).toMatch(/directory entries/);
    expect(evictionVerdict(undefined).verdict).toBe('warn');
  });
});

describe('redis takes writes', () => {
  const MiB = 2 ** 20;
  it('fails on the refusal of a write (OOM, MISCONF), warns a noeviction Redis near maxmemory, and judges nothing else from INFO', () => {
    expect(writesVerdict(null, { used_memory: String(10 * MiB), maxmemory: '0' })).toMatchObject({ verdict: 'ok', detail: 'takes writes (no maxmemory)' });
    expect(writesVerdict(null, { used_memory: String(50 * MiB), maxmemory: String(100 * MiB), maxmemory_policy: 'noeviction' })).toEqual({ verdict: 'ok', detail: 'takes writes; 50 MiB used of maxmemory 100 MiB (50 %)', hint: '' });
    expect(writesVerdict(null, { used_memory: String(95 * MiB), maxmemory: String(100 * MiB), maxmemory_policy: 'noeviction' })).toMatchObject({ verdict: 'warn', detail: expect.stringMatching(/\(95 %\): refused at 100 %/) });
    // an evicting Redis at maxmemory takes writes (deleting keys: the eviction check warns of that)
    expect(writesVerdict(null, { used_memory: String(100 * MiB), maxmemory: String(100 * MiB), maxmemory_policy: 'allkeys-lru' }).verdict).toBe('ok');
    const oom = "OOM command not allowed when used memory > 'maxmemory'.";
    expect(writesVerdict(oom, { used_memory: String(100 * MiB), maxmemory: String(100 * MiB) })).toMatchObject({ verdict: 'fail', detail: `refuses writes: ${oom}; 100 MiB used of maxmemory 100 MiB (100 %)` });
    expect(writesVerdict('MISCONF Errors writing to the AOF file: No space left on device', {})).toMatchObject({ verdict: 'fail', detail: expect.stringMatching(/^refuses writes: MISCONF/), hint: expect.stringMatching(/free its disk/) });
    // a user the ACL keeps from the prefix's keys: named as such, not as an unreachable Redis (review "diff13")
    expect(writesVerdict("NOPERM this user has no permissions to access one of the keys used as arguments", {})).toMatchObject({ verdict: 'fail', hint: expect.stringMatching(/ACL SETUSER <user> ~<prefix>\*/) });
  });
});

describe('redis persistence', () => {
  it('is ok with the append-only file, a warning with snapshots only, a failure with neither', () => {
    expect(persistenceVerdict('yes', '').verdict).toBe('ok');
    expect(persistenceVerdict('no', '3600 1 300 100').verdict).toBe('warn');
    expect(persistenceVerdict('no', '').verdict).toBe('fail');
    expect(persistenceVerdict('no', '').hint).toMatch(/appendonly yes/);
    expect(persistenceVerdict(undefined, undefined).verdict).toBe('warn');
    expect(persistenceVerdict('no', undefined).verdict).toBe('warn');
  });

  it('reads INFO text (the fallback where CONFIG is refused)', () => {
    const info = parseInfo('# Persistence\r\nloading:0\r\naof_enabled:1\r\n\r\n# Memory\r\nmaxmemory_policy:noeviction\r\n');
    expect(info.aof_enabled).toBe('1');
    expect(info.maxmemory_policy).toBe('noeviction');
    expect(Object.getPrototypeOf(info)).toBeNull();
  });
});

describe('clock skew against Redis', () => {
  const at = 1_700_000_000_000;
  it('is ok within 500 ms, a warning beyond, a failure beyond 5 s', () => {
    expect(skewVerdict(at, at + 400, 2).verdict).toBe('ok');
    expect(skewVerdict(at, at + 700, 2).verdict).toBe('warn');
    expect(skewVerdict(at, at - 700, 2).detail).toMatch(/behind/);
    expect(skewVerdict(at, at + 6_000, 2).verdict).toBe('fail');
  });

  it('does not count what the round trip leaves uncertain', () => {
    expect(skewVerdict(at, at + 600, 300).verdict).toBe('ok');
  });
});

describe('the other verdicts', () => {
  it('event stream: near its MAXLEN, consumer groups not about to lose events', () => {
    expect(streamVerdict({ length: 900, maxLen: 1_000, groups: [{ name: 'svc', lag: 3 }] }).verdict).toBe('ok');
    expect(streamVerdict({ length: 50_000, maxLen: 1_000, groups: [] }).verdict).toBe('warn');
    const behind = streamVerdict({ length: 1_000, maxLen: 1_000, groups: [{ name: 'svc', lag: 950 }] });
    expect(behind.verdict).toBe('warn');
    expect(behind.detail).toMatch(/svc/);
  });

  it('event-loop delay: a warning from 100 ms p99, a failure from 1 s', () => {
    expect(loopDelayVerdict(3, 40, 60).verdict).toBe('ok');
    expect(loopDelayVerdict(150, 400, 60)).toMatchObject({ verdict: 'warn', detail: 'event-loop delay p99 150 ms, max 400 ms over the last 60 s' });
    expect(loopDelayVerdict(1_200, 3_000, 60).verdict).toBe('fail');
  });

  it('worker pool, uWS binding, disk space and push sender', () => {
    const stats = { threads: 2, queued: 0, completed: 5, failed: 0, timeouts: 0, retried: 0, rejected: 0, workerErrors: 0, batches: 3 };
    expect(poolVerdict(stats).verdict).toBe('ok');
    expect(poolVerdict({ ...stats, queued: 21 }).verdict).toBe('warn');
    expect(poolVerdict({ ...stats, threads: 0 }).verdict).toBe('fail');
    expect(bindingVerdict('uWebSockets.js', true).verdict).toBe('ok');
    expect(bindingVerdict('@trufflesuite/uws-js-unofficial', false).hint).toMatch(/UWS_REQUIRE_NATIVE/);
    const gib = 1024 ** 3;
    expect(diskVerdict('/data', 50 * gib, 100 * gib).verdict).toBe('ok');
    expect(diskVerdict('/data', 5 * gib, 100 * gib).verdict).toBe('warn');
    expect(diskVerdict('/data', 0.5 * gib, 2 * gib).verdict).toBe('warn');
    expect(diskVerdict('/data', 0.5 * gib, 100 * gib).verdict).toBe('fail');
    expect(pushSenderVerdict(undefined).verdict).toBe('warn');
    expect(pushSenderVerdict({ name: 'fcm', delivers: true, missing: ['FCM_CREDENTIALS'] }).verdict).toBe('fail');
    expect(pushSenderVerdict({ name: 'fcm', delivers: true }).verdict).toBe('ok');
  });

  it('releases: one on every live node, or a warning naming which runs where (a node saying none is older)', () => {
    expect(releasesVerdict([{ node: 'a', release: '1.0+x' }, { node: 'b', release: '1.0+x' }], '1.0+x')).toEqual({ verdict: 'ok', detail: 'all 2 live nodes run 1.0+x', hint: '' });
    expect(releasesVerdict([{ node: 'a', release: '1.0+x' }], '1.0+x').detail).toBe('the one live node runs 1.0+x');
    const rolling = releasesVerdict([{ node: 'a', release: '1.0+x' }, { node: 'b', release: '1.1+y' }, { node: 'c', release: '1.1+y' }], '1.1+y');
    expect(rolling).toMatchObject({ verdict: 'warn', detail: '2 releases on 3 live nodes (this one 1.1+y): 1.0+x on a; 1.1+y on b, c', hint: expect.stringMatching(/Upgrading a cluster/) });
    const older = releasesVerdict([{ node: 'a', release: null }, { node: 'b', release: '1.1+y' }], '1.1+y');
    expect(older.verdict).toBe('warn');
    expect(older.detail).toMatch(/an older release \(says none\) on a/);
    // every node saying none is a roll too: this node itself says one
    expect(releasesVerdict([{ node: 'a', release: null }], '1.1+y').verdict).toBe('warn');
    const many = releasesVerdict([...Array.from({ length: 7 }, (_, i) => ({ node: `n${i}`, release: 'old' })), { node: 'z', release: 'new' }], 'new');
    expect(many.detail).toMatch(/old on n0, n1, n2, n3, n4 and 2 more; new on z/);
  });
});

describe('the runner', () => {
  const check = (name: string, run: Check['run'], timeoutMs?: number): Check => ({ name, hintOnError: `fix ${name}`, run, ...(timeoutMs ? { timeoutMs } : {}) });

  it('reports a throw and a check that never settles as failed, with the check\'s hint', async () => {
    const report = await runChecks(
      [
        check('fine', async () => ({ verdict: 'ok', detail: 'fine', hint: '' })),
        check('throws', async () => {
          throw new Error('connection refused');
        }),
        check('hangs', () => new Promise(() => {}), 20),
      ],
      { node: 'n1', mode: 'cluster' },
    );
    expect(report.verdict).toBe('fail');
    expect(report.checks).toEqual([
      { name: 'fine', verdict: 'ok', detail: 'fine', hint: '' },
      { name: 'throws', verdict: 'fail', detail: 'connection refused', hint: 'fix throws' },
      { name: 'hangs', verdict: 'fail', detail: 'no answer within 20 ms', hint: 'fix hangs' },
    ]);
  });

  it('prints a checklist with the hints of what is not ok', async () => {
    const report = await runChecks(
      [check('a', async () => ({ verdict: 'ok', detail: 'fine', hint: '' })), check('b', async () => ({ verdict: 'warn', detail: 'meh', hint: 'do x' }))],
      { node: 'n1', mode: 'embedded' },
    );
    expect(report.verdict).toBe('warn');
    expect(formatChecklist(report)).toBe('n1 (embedded)\n✓ a: fine\n! b: meh\n    → do x\n1 ok, 1 to look at, 0 failing\n');
  });

  it('the checklist shows control characters and bidi overrides as escapes; the doctor prints only what has a report’s shape', () => {
    const report = { node: 'n\u001b[2J', mode: 'embedded' as const, verdict: 'fail' as const, checks: [{ name: 'disk', verdict: 'fail' as const, detail: 'path /data\u001b]0;owned\u0007 full', hint: 'free \u202espace' }] };
    const text = formatChecklist(report);
    expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u202e]/);
    expect(text).toContain('n\\u001b[2J (embedded)');
    expect(text).toContain('    → free \\u202espace');
    expect(isDiagnoseReport(report)).toBe(true);
    for (const bad of [null, [], { checks: [] }, { node: 'n', mode: 'embedded', checks: [{ name: 'a', verdict: 'fine', detail: '', hint: '' }] }, { node: 'n', mode: 'embedded', checks: [{ name: 'a', verdict: 'ok' }] }]) {
      expect(isDiagnoseReport(bad), JSON.stringify(bad)).toBe(false);
    }
  });
});

describe('readiness', () => {
  const state = { started: true, draining: false, full: false, localStoreOk: true };
  it('answers for this node alone: starting, draining, full, its own store', () => {
    expect(notReadyReasons(state)).toEqual([]);
    expect(notReadyReasons({ ...state, started: false })).toEqual(['starting']);
    expect(notReadyReasons({ ...state, draining: true, full: true })).toEqual(['draining', 'full']);
    expect(notReadyReasons({ ...state, localStoreOk: false })).toEqual(['local_store_failing']);
  });
});
