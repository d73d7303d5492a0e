import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Directory, HubLocation } from '../../src/ports/directory/directory.js';

/** A directory under test. */
export interface DirectoryFixture {
  directory: Directory;
  /**
   * Moves the implementation's clock forward. Present only where the implementation takes an
   * injectable clock (memory); without it the suite lets real time pass, in small polled steps.
   */
  advanceTime?(ms: number): void;
  close(): Promise<void>;
}

export interface DirectoryOptions {
  /** node liveness ttl the implementation must use; small, so a real backend expires quickly */
  ttlMs: number;
}

/** Called once per test; a real backend should use a fresh key prefix per call. */
export type DirectoryFactory = (options: DirectoryOptions) => Promise<DirectoryFixture>;

/** The ttl of the liveness tests: small enough for a real backend to expire entries in a test. */
const TTL_MS = 600;

/**
 * The ttl of every other test: so long that nothing expires while it runs, however slow the
 * machine (those tests must not depend on how fast they run).
 */
const LONG_TTL_MS = 600_000;

/** Clock granularity between this process and a backend (ms), allowed in lower bounds on time. */
const CLOCK_SLACK_MS = 5;

/** Unique per test, so tests sharing a real backend never touch each other's hubs or nodes. */
const uid = (): string => randomUUID().replaceAll('-', '').slice(0, 16);

/** A claim's answer as `lookup` tells it: the location without `displaced`. */
const located = ({ node, epoch, since }: HubLocation): HubLocation => ({ node, epoch, since });

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The promises of `Directory` (src/ports/directory/directory.ts), for any implementation. Expiry is shown
 * through the fixture's clock where it has one, to the millisecond; otherwise by waiting for it
 * (the test's timeout is the only ceiling) and checking it did not come before the ttl.
 */
export function directoryContract(name: string, make: DirectoryFactory): void {
  describe(name, () => {
    let fx: DirectoryFixture;
    let dir: Directory;
    let hub: string;
    let nodeA: string;
    let nodeB: string;

    beforeEach(async () => {
      fx = await make({ ttlMs: LONG_TTL_MS });
      dir = fx.directory;
      const id = uid();
      hub = `hub-${id}`;
      nodeA = `node-a-${id}`;
      nodeB = `node-b-${id}`;
    });

    afterEach(async () => {
      await fx.close();
    });

    /** Lets `ms` pass on the implementation's clock. */
    async function elapse(ms: number): Promise<void> {
      if (fx.advanceTime) fx.advanceTime(ms);
      else await sleep(ms);
    }

    /**
     * Lets time pass in steps of `stepMs` (calling `each` after every step) until `cond` holds. On
     * a fake clock it fails after `fakeLimitMs` of fake time; on the real clock it waits as long as
     * it takes (the test's timeout is the ceiling).
     */
    async function passUntil(cond: () => Promise<boolean>, stepMs: number, fakeLimitMs: number, each?: () => Promise<void>): Promise<void> {
      let passed = 0;
      while (!(await cond())) {
        if (fx.advanceTime && passed >= fakeLimitMs) throw new Error(`condition not met after ${passed} ms of fake time`);
        await elapse(stepMs);
        passed += stepMs;
        await each?.();
      }
    }

    describe('claim and lookup', () => {
      it('lookup of a hub never claimed is null', async () => {
        expect(await dir.lookup(hub)).toBeNull();
        expect(await dir.holds(hub, nodeA, 1)).toBe(false);
      });

      it('claim makes the node the holder and lookup tells it', async () => {
        const loc = await dir.claim(hub, nodeA, 1_700_000_000_123);
        expect(loc).toEqual({ node: nodeA, epoch: expect.any(Number), since: 1_700_000_000_123, displaced: false });
        expect(await dir.lookup(hub)).toEqual(located(loc));
        expect(await dir.holds(hub, nodeA, loc.epoch)).toBe(true);
      });

      it('claim without a time stamps `since` with the current time', async () => {
        const loc = await dir.claim(hub, nodeA);
        expect(Number.isFinite(loc.since)).toBe(true);
        expect(loc.since).toBeGreaterThan(0);
        expect((await dir.lookup(hub))?.since).toBe(loc.since);
      });

      it('hubs are independent', async () => {
        const other = `${hub}-other`;
        const a = await dir.claim(hub, nodeA);
        expect(await dir.lookup(other)).toBeNull();
        const b = await dir.claim(other, nodeB);
        expect(await dir.lookup(hub)).toEqual(located(a));
        expect(await dir.lookup(other)).toEqual(located(b));
        await dir.release(other, nodeB, b.epoch);
        expect(await dir.lookup(hub)).toEqual(located(a));
      });

      it('what claim and lookup return are copies', async () => {
        const loc = await dir.claim(hub, nodeA);
        const snapshot = { ...loc };
        const seen = (await dir.lookup(hub))!;
        seen.node = 'someone-else';
        seen.epoch += 100;
        loc.epoch += 100;
        expect(await dir.lookup(hub)).toEqual(located(snapshot));
      });
    });

    describe('epochs', () => {
      it('every claim returns a larger epoch: same node, other node, after release', async () => {
        const epochs: number[] = [];
        epochs.push((await dir.claim(hub, nodeA)).epoch);
        epochs.push((await dir.claim(hub, nodeA)).epoch); // reconnect to the same node
        epochs.push((await dir.claim(hub, nodeB)).epoch); // takeover by another node
        await dir.release(hub, nodeB, epochs[2]!);
        expect(await dir.lookup(hub)).toBeNull();
        epochs.push((await dir.claim(hub, nodeA)).epoch); // after release: never reused
        for (let i = 1; i < epochs.length; i++) expect(epochs[i]!, `claim ${i}`).toBeGreaterThan(epochs[i - 1]!);
        expect(await dir.lookup(hub)).toMatchObject({ node: nodeA, epoch: epochs[3] });
      });

      it('a reconnect to the same node makes the old session stale: holds answers only for the new epoch', async () => {
        const first = await dir.claim(hub, nodeA);
        const second = await dir.claim(hub, nodeA);
        expect(await dir.holds(hub, nodeA, first.epoch)).toBe(false);
        expect(await dir.holds(hub, nodeA, second.epoch)).toBe(true);
        expect(await dir.holds(hub, nodeA, second.epoch + 1)).toBe(false);
        // the old session's late release leaves the new one in place
        await dir.release(hub, nodeA, first.epoch);
        expect(await dir.lookup(hub)).toEqual(located(second));
      });

      it('a takeover makes the old holder stale: holds answers false for it', async () => {
        const a = await dir.claim(hub, nodeA);
        const b = await dir.claim(hub, nodeB);
        expect(await dir.holds(hub, nodeA, a.epoch)).toBe(false);
        expect(await dir.holds(hub, nodeB, b.epoch)).toBe(true);
        expect(await dir.lookup(hub)).toEqual(located(b));
      });

      it('racing claims from two nodes get different epochs and exactly one holder, the larger epoch', async () => {
        for (let round = 0; round < 20; round++) {
          const h = `${hub}-${round}`;
          const [a, b] = await Promise.all([dir.claim(h, nodeA), dir.claim(h, nodeB)]);
          expect(a.epoch).not.toBe(b.epoch);
          const winner = a.epoch > b.epoch ? a : b;
          const loser = winner === a ? b : a;
          expect(await dir.holds(h, winner.node, winner.epoch), `round ${round}`).toBe(true);
          expect(await dir.holds(h, loser.node, loser.epoch), `round ${round}`).toBe(false);
          expect(await dir.lookup(h)).toEqual(located(winner));
          expect([winner.displaced, loser.displaced], `round ${round}`).toEqual([true, false]); // the later claim took the earlier one's entry
        }
      });

      it('many racing claims of one hub all get distinct epochs', async () => {
        const nodes = Array.from({ length: 10 }, (_, i) => `${nodeA}-${i}`);
        const locs = await Promise.all(nodes.map((n) => dir.claim(hub, n)));
        const epochs = locs.map((l) => l.epoch);
        expect(new Set(epochs).size).toBe(epochs.length);
        const max = locs.reduce((m, l) => (l.epoch > m.epoch ? l : m));
        expect(await dir.lookup(hub)).toEqual(located(max));
        expect(locs.filter((l) => !l.displaced)).toHaveLength(1); // the first claim
        const holders = await Promise.all(locs.map((l) => dir.holds(hub, l.node, l.epoch)));
        expect(holders.filter(Boolean)).toHaveLength(1);
      });
    });

    describe('release', () => {
      it('removes the entry when node and epoch match', async () => {
        const a = await dir.claim(hub, nodeA);
        expect(await dir.release(hub, nodeA, a.epoch)).toBe(true);
        expect(await dir.lookup(hub)).toBeNull();
        expect(await dir.holds(hub, nodeA, a.epoch)).toBe(false);
      });

      it('changes nothing with another node or another epoch', async () => {
        const a = await dir.claim(hub, nodeA);
        await dir.release(hub, nodeB, a.epoch);
        await dir.release(hub, nodeA, a.epoch + 1);
        await dir.release(hub, nodeA, a.epoch - 1);
        expect(await dir.lookup(hub)).toEqual(located(a));
        expect(await dir.holds(hub, nodeA, a.epoch)).toBe(true);
      });

      it('a late release of a taken-over session leaves the new holder in place and says so (false)', async () => {
        const a = await dir.claim(hub, nodeA);
        const b = await dir.claim(hub, nodeB);
        expect(await dir.release(hub, nodeA, a.epoch)).toBe(false);
        expect(await dir.lookup(hub)).toEqual(located(b));
        expect(await dir.holds(hub, nodeB, b.epoch)).toBe(true);
      });

      it('of a hub never claimed is harmless', async () => {
        await expect(dir.release(hub, nodeA, 1)).resolves.toBe(true);
        expect(await dir.lookup(hub)).toBeNull();
      });

      it('says true when no later claim holds the entry: released already, or by the later session too', async () => {
        const a = await dir.claim(hub, nodeA);
        const b = await dir.claim(hub, nodeB);
        expect(await dir.release(hub, nodeB, b.epoch)).toBe(true);
        expect(await dir.release(hub, nodeA, a.epoch)).toBe(true); // the hub is offline: nobody holds it
        expect(await dir.release(hub, nodeB, b.epoch)).toBe(true);
      });
    });

    describe('liveness', () => {
      beforeEach(async () => {
        await fx.close();
        fx = await make({ ttlMs: TTL_MS });
        dir = fx.directory;
      });

      it('entries of a node that stops refreshing are there until the ttl and gone after it; holds turns false', async () => {
        const before = Date.now();
        const a = await dir.claim(hub, nodeA);
        // inside the ttl: at once, and on a fake clock 1 ms before its end
        fx.advanceTime?.(TTL_MS - 1);
        expect(await dir.lookup(hub)).toEqual(located(a));
        expect(await dir.holds(hub, nodeA, a.epoch)).toBe(true);
        if (fx.advanceTime) {
          fx.advanceTime(1);
          expect(await dir.lookup(hub)).toBeNull();
        } else {
          await passUntil(async () => (await dir.lookup(hub)) === null, TTL_MS / 20, 0);
          // not before the ttl: measured from before the claim, so this can only overstate it
          expect(Date.now() - before).toBeGreaterThanOrEqual(TTL_MS - CLOCK_SLACK_MS);
        }
        expect(await dir.holds(hub, nodeA, a.epoch)).toBe(false);
      });

      it('a claim after expiry still gets a larger epoch', async () => {
        const a = await dir.claim(hub, nodeA);
        await passUntil(async () => (await dir.lookup(hub)) === null, TTL_MS / 10, TTL_MS * 5);
        const b = await dir.claim(hub, nodeB);
        expect(b.epoch).toBeGreaterThan(a.epoch);
        expect(b.displaced).toBe(true); // a dead node's session said nothing either
        expect(await dir.lookup(hub)).toEqual(located(b));
      });

      it('refreshNode keeps a node\'s entries beyond the ttl while another node\'s expire', async () => {
        const before = Date.now();
        let faked = 0;
        const kept = await dir.claim(hub, nodeA);
        const other = `${hub}-other`;
        const gone = await dir.claim(other, nodeB);
        // refresh node A every ttl/4 (the interface asks for ttl/3); node B stays silent
        await passUntil(
          async () => (await dir.lookup(other)) === null,
          TTL_MS / 4,
          TTL_MS * 5,
          async () => {
            faked += TTL_MS / 4;
            await dir.refreshNode(nodeA);
          },
        );
        // B's entry lived its ttl (on a fake clock the steps are the time that passed)
        expect(fx.advanceTime ? faked : Date.now() - before).toBeGreaterThanOrEqual(TTL_MS - (fx.advanceTime ? 0 : CLOCK_SLACK_MS));
        // and a further full ttl of refreshing
        for (let passed = 0; passed <= TTL_MS; passed += TTL_MS / 4) {
          await elapse(TTL_MS / 4);
          await dir.refreshNode(nodeA);
        }
        expect(await dir.lookup(hub)).toEqual(located(kept));
        expect(await dir.holds(hub, nodeA, kept.epoch)).toBe(true);
        expect(await dir.holds(other, nodeB, gone.epoch)).toBe(false);
      });

      it("takeOrphans hands a lapsed node's sessions to one caller: those no later claim took, none released", async () => {
        await dir.refreshNode(nodeA);
        await dir.refreshNode(nodeB);
        const [moved, released, left] = [`${hub}-moved`, `${hub}-released`, `${hub}-left`];
        const a = await dir.claim(left, nodeA);
        await dir.claim(moved, nodeA);
        const r = await dir.claim(released, nodeA);
        await dir.release(released, nodeA, r.epoch);
        // the hub reconnected to B while A was dying
        await dir.claim(moved, nodeB);
        expect(await dir.takeOrphans(nodeB)).toEqual([]);
        // A stops refreshing; B goes on
        await passUntil(async () => (await dir.lookup(left)) === null, TTL_MS / 4, TTL_MS * 5, async () => void (await dir.refreshNode(nodeB)));
        await elapse(TTL_MS / 4);
        await dir.refreshNode(nodeB);
        const [first, second] = await Promise.all([dir.takeOrphans(nodeB), dir.takeOrphans(`${nodeB}-too`)]);
        expect([...first, ...second]).toEqual([{ hubId: left, node: nodeA, epoch: a.epoch }]);
        expect(await dir.takeOrphans(nodeB)).toEqual([]);
        // a sweep that failed to say them puts them back: the next one gets them again
        await dir.relist(nodeA, [{ hubId: left, epoch: a.epoch }]);
        expect(await dir.takeOrphans(nodeB)).toEqual([{ hubId: left, node: nodeA, epoch: a.epoch }]);
        expect(await dir.refreshNode(nodeB)).toBe(false);
        // A was only stalled: its refresh hears that its sessions were taken, once, and lists them again
        expect(await dir.refreshNode(nodeA)).toBe(true);
        expect(await dir.refreshNode(nodeA)).toBe(false);
        await dir.relist(nodeA, [{ hubId: left, epoch: a.epoch }]);
        expect(await dir.holds(left, nodeA, a.epoch)).toBe(true);
        // and should it die now, they are handed over again
        await passUntil(async () => (await dir.lookup(left)) === null, TTL_MS / 4, TTL_MS * 5, async () => void (await dir.refreshNode(nodeB)));
        await elapse(TTL_MS / 4);
        await dir.refreshNode(nodeB);
        expect(await dir.takeOrphans(nodeB)).toEqual([{ hubId: left, node: nodeA, epoch: a.epoch }]);
      });
    });

    describe('takeOrphans at start', () => {
      it("with own, a node takes its own id's sessions (an earlier process's) once that id lapsed, never while it is alive", async () => {
        await fx.close();
        fx = await make({ ttlMs: TTL_MS });
        dir = fx.directory;
        await dir.refreshNode(nodeA);
        const a = await dir.claim(hub, nodeA);
        // alive: this process's own, or another node's given the same id by mistake
        expect(await dir.takeOrphans(nodeA, true)).toEqual([]);
        await passUntil(async () => (await dir.lookup(hub)) === null, TTL_MS / 4, TTL_MS * 5);
        expect(await dir.takeOrphans(nodeA)).toEqual([]);
        expect(await dir.takeOrphans(nodeA, true)).toEqual([{ hubId: hub, node: nodeA, epoch: a.epoch }]);
        expect(await dir.takeOrphans(nodeA, true)).toEqual([]);
      });
    });
  });
}
