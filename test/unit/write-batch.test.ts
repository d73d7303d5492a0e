import { describe, expect, it } from 'vitest';
import { WriteBatch } from '../../src/transport/write-batch.js';

/** Resolves after the immediates queued so far (the batch's end-of-turn run among them). */
const endOfTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function batch() {
  const errors: unknown[] = [];
  const ran: string[] = [];
  const writes = new WriteBatch((err) => errors.push(err));
  const write = (name: string) => () => void ran.push(name);
  return { writes, errors, ran, write };
}

describe('WriteBatch', () => {
  it('runs deferred writes at the end of the turn, not when deferred, in the order deferred, each once', async () => {
    const { writes, errors, ran, write } = batch();
    writes.defer(write('a'));
    writes.defer(write('b'));
    writes.defer(write('c'));
    // still inside the turn (a uWS callback, in the server): nothing written yet
    await Promise.resolve();
    expect(ran).toEqual([]);
    await endOfTurn();
    expect(ran).toEqual(['a', 'b', 'c']);
    await endOfTurn();
    expect(ran).toEqual(['a', 'b', 'c']);
    expect(errors).toEqual([]);
  });

  it('a flush before a close writes what is queued now, and the end of the turn does not write it again', async () => {
    const { writes, ran, write } = batch();
    writes.defer(write('frame'));
    writes.flush(); // what UwsHubLink.close does, so queued frames precede the close
    ran.push('close');
    await endOfTurn();
    expect(ran).toEqual(['frame', 'close']);
  });

  it('a write deferred by a write of the batch runs at the same end of turn, after the rest queued before it', async () => {
    const { writes, ran, write } = batch();
    const turns: string[] = [];
    writes.defer(() => {
      ran.push('outer');
      // what the hub gateway's inbox does: frames handled at the end of the turn queue their writes
      writes.defer(write('inner'));
    });
    writes.defer(write('second'));
    setImmediate(() => turns.push(`next immediate saw ${ran.join(',')}`));
    await endOfTurn();
    expect(ran).toEqual(['outer', 'second', 'inner']);
    // all three ran in the batch's own run, before an immediate queued after it
    expect(turns).toEqual(['next immediate saw outer,second,inner']);
  });

  it('a write that throws is reported to onError and the writes after it still run', async () => {
    const { writes, errors, ran, write } = batch();
    const failure = new Error('socket gone');
    writes.defer(write('a'));
    writes.defer(() => {
      throw failure;
    });
    writes.defer(write('c'));
    await endOfTurn();
    expect(ran).toEqual(['a', 'c']);
    expect(errors).toEqual([failure]);
    // and the batch goes on working
    writes.defer(write('d'));
    await endOfTurn();
    expect(ran).toEqual(['a', 'c', 'd']);
    expect(errors).toHaveLength(1);
  });

  it('defers in one turn share one end-of-turn run: deferring again after a flush schedules anew', async () => {
    const { writes, ran, write } = batch();
    writes.defer(write('a'));
    await endOfTurn();
    writes.defer(write('b'));
    writes.defer(write('c'));
    await endOfTurn();
    expect(ran).toEqual(['a', 'b', 'c']);
  });
});
