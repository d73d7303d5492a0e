/**
 * One process per DATA_DIR, held with flock(2) on node.lock (dir-lock.ts), against processes of its
 * own (test/helpers/dir-lock-child.ts). Until 2026-12-06 the pid in the file was the lock: two
 * starters at one instant both opened the store (5 of 8 tries with a stale lock), and a node in
 * another container, pid 1 as the running one, took its lock for a stale one of its own and opened
 * the store beside it (the running node then stopped, and `npm run data -- export` called the
 * store corrupt). And with DATA_SYNC=os a kill -9 emptied the history, acknowledged device events
 * with it, though a process crash tears no commit.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { DataStoreError, openDataStore, writeErrorText, type DataStore } from '../../src/ports/lmdb.js';
import { processAlive, processIdentity, processState } from '../../src/ports/process-identity.js';

const ROOT = resolve(import.meta.dirname, '../..');
const HELPER = 'test/helpers/dir-lock-child.ts';
const dir = () => mkdtempSync(join(tmpdir(), 'dir-lock-'));
const BOOT = (() => {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return undefined;
  }
})();

interface Child {
  proc: ChildProcessWithoutNullStreams;
  /** sends one command, resolves with the child's answer */
  ask(command: string): Promise<string>;
  stderr(): string;
}

const children: Child[] = [];
const stores: DataStore[] = [];
afterEach(async () => {
  await Promise.allSettled(stores.splice(0).map((s) => s.close()));
  for (const c of children.splice(0)) c.proc.kill('SIGKILL');
});

/** A child process ready for commands (its modules loaded: its first answer came). */
async function child(env: Record<string, string> = {}): Promise<Child> {
  const proc = spawn(process.execPath, ['--import', 'tsx', HELPER], { cwd: ROOT, env: { ...process.env, ...env } });
  let stderr = '';
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const lines = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
  const c: Child = {
    proc,
    async ask(command) {
      proc.stdin.write(`${command}\n`);
      const answer = await lines.next();
      if (answer.done) throw new Error(`child ${proc.pid} ended: ${stderr}`);
      return answer.value as string;
    },
    stderr: () => stderr,
  };
  children.push(c);
  expect(await c.ask('close')).toBe('closed');
  return c;
}

/** The pid of a process that has ended. */
async function deadPid(): Promise<number> {
  const gone = spawn(process.execPath, ['-e', '']);
  return new Promise<number>((done) => gone.on('exit', () => done(gone.pid!)));
}

const refusal = (d: string, options = {}): DataStoreError => {
  try {
    stores.push(openDataStore(d, options));
  } catch (err) {
    return err as DataStoreError;
  }
  throw new Error('opened');
};

describe('one process per DATA_DIR (flock on node.lock)', () => {
  it('lets exactly one of two processes opening one DATA_DIR at the same instant have it, with no lock or a stale one', async () => {
    const [a, b] = await Promise.all([child(), child()]);
    const both: string[] = [];
    for (let round = 0; round < 30; round++) {
      const d = dir();
      // every other round a crashed node's lock is there: both starters see it stale
      if (round % 2 === 1) writeFileSync(join(d, 'node.lock'), `${await deadPid()}\nnode crashed\nx:1\n`);
      const at = Date.now() + 50;
      const answers = await Promise.all([a!.ask(`open ${d} ${at}`), b!.ask(`open ${d} ${at}`)]);
      const opened = answers.filter((x) => x === 'opened').length;
      if (opened !== 1) both.push(`round ${round}: ${answers.join(' | ')}`);
      else expect(answers.find((x) => x !== 'opened')).toMatch(/^refused DATA_DIR .* is in use by another node/);
      await Promise.all([a!.ask('close'), b!.ask('close')]);
    }
    expect(both).toEqual([]);
  });

  it('refuses a lock naming its own pid while another process holds it (pid 1 in two containers), and leaves the file as it is', async () => {
    const d = dir();
    const holder = await child();
    expect(await holder.ask(`open ${d} 0`)).toBe('opened');
    // what a node in another PID namespace writes: this process's pid, another start
    const lock = join(d, 'node.lock');
    writeFileSync(lock, `${process.pid}\nnode-in-pod-a\nother-boot:1\n${BOOT ?? ''}\n`);
    const before = statSync(lock);
    const err = refusal(d);
    expect(err).toBeInstanceOf(DataStoreError);
    expect(err.message).toBe(`DATA_DIR ${d} is in use by another node (node-in-pod-a, pid ${process.pid} in another PID namespace (another container)): two nodes must not share one data directory; give each its own DATA_DIR (a tool such as \`npm run data\`: stop the node first, or take a running node's backup from its admin port, GET /debug/backup)`);
    expect(statSync(lock).ino).toBe(before.ino);
    expect(readFileSync(lock, 'utf8')).toBe(`${process.pid}\nnode-in-pod-a\nother-boot:1\n${BOOT ?? ''}\n`);
    // the same for the command-line tools (a backup job's pod): refused, never called corrupt
    expect(refusal(d, { owner: 'npm run data -- export' }).message).toMatch(/is in use by another node/);
    expect(await holder.ask('close')).toBe('closed');
    expect(existsSync(lock)).toBe(false);
    stores.push(openDataStore(d));
  });

  it('opens a DATA_DIR whose lock names a zombie: a node that exited and was never reaped holds nothing', async () => {
    const d = dir();
    // the child exits once its parent has become `sleep`, which never waits for it (one that exited
    // before the exec could be reaped by the shell)
    const parent = spawn('sh', ['-c', 'sleep 0.2 & echo $!; exec sleep 30']);
    try {
      const zombie = Number(await new Promise<string>((ok) => createInterface({ input: parent.stdout }).once('line', ok)));
      // a blocking wait: a worker that runs files one after another may hold another file's fake timers
      let state: string | undefined;
      while ((state = processState(zombie)) !== 'Z' && state !== undefined) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
      expect(state).toBe('Z');
      writeFileSync(join(d, 'node.lock'), `${zombie}\nnode-exited\n${processIdentity(zombie) ?? ''}\n${BOOT ?? ''}\n`);
      stores.push(openDataStore(d));
      expect(processAlive(zombie)).toBe(false);
      expect(processAlive(parent.pid!)).toBe(true);
    } finally {
      parent.kill();
    }
  });

  it('without flock (koffi missing) warns and judges by the pid; a node with flock still refuses such a live holder (an upgrade)', async () => {
    const d = dir();
    const old = await child({ NO_KOFFI: '1' });
    expect(await old.ask(`open ${d} 0`)).toBe('opened');
    expect(old.stderr()).toContain(`data warning: DATA_DIR ${d}: cannot call flock (koffi: koffi blocked by the test)`);
    expect(refusal(d).message).toMatch(new RegExp(`is in use by another node \\(child ${old.proc.pid}, pid ${old.proc.pid}\\)`));
    expect(await old.ask('close')).toBe('closed');
    stores.push(openDataStore(d));
  });
});

describe.skipIf(BOOT === undefined)('DATA_SYNC=os after an unclean start: the history kept unless the machine restarted', () => {
  const history = (s: DataStore) => s.side('history').openDB<string, string>({ name: 'h' });

  it('keeps the history after a kill -9 (the same boot: the page cache kept every commit)', async () => {
    const d = dir();
    const node = await child();
    expect(await node.ask(`open ${d} 0 os`)).toBe('opened');
    expect(await node.ask('fill 200')).toBe('filled');
    const exited = new Promise((done) => node.proc.on('exit', done));
    node.proc.kill('SIGKILL');
    await exited;
    const after = openDataStore(d, { sync: 'os' });
    stores.push(after);
    expect(after.uncleanStart).toBe(true);
    expect(history(after).get('k199')).toBe('event 199');
  });

  it('starts it empty when the lock left behind names another boot, or none', async () => {
    for (const boot of ['00000000-0000-0000-0000-000000000000', BOOT!, '']) {
      const d = dir();
      const s = openDataStore(d, { sync: 'os' });
      for (let i = 0; i < 200; i++) void history(s).put(`k${i}`, `event ${i}`);
      await s.close();
      writeFileSync(join(d, 'node.lock'), `${await deadPid()}\nnode crashed\nx:1\n${boot}\n`);
      const after = openDataStore(d, { sync: 'os' });
      stores.push(after);
      expect(after.uncleanStart).toBe(true);
      expect(history(after).get('k0'), `boot "${boot}"`).toBe(boot === BOOT ? 'event 0' : undefined);
    }
  });

  it('a crash stays a crash through a start refused on a full disk and through a tool: the lock left behind is written back (review "diskfull")', async () => {
    const d = dir();
    const s = openDataStore(d, { sync: 'os' });
    for (let i = 0; i < 200; i++) void history(s).put(`k${i}`, `event ${i}`);
    await s.close();
    // a node of another boot crashed (DATA_SYNC=os: its unsynced history is not to be trusted)
    const left = `${await deadPid()}\nnode crashed\nx:1\n00000000-0000-0000-0000-000000000000\n`;
    writeFileSync(join(d, 'node.lock'), left);
    // the orchestrator restarts it while the disk is still below the reserve: refused
    expect(() => openDataStore(d, { sync: 'os', reserveBytes: Number.MAX_SAFE_INTEGER })).toThrow(/below the reserve|reserve/);
    expect(readFileSync(join(d, 'node.lock'), 'utf8')).toBe(left);
    // an operator looks with a tool (npm run data -- export): it replays nothing either
    const tool = openDataStore(d, { sync: 'os' });
    expect(tool.uncleanStart).toBe(true);
    await tool.close({ keepUncleanMark: true });
    expect(readFileSync(join(d, 'node.lock'), 'utf8')).toBe(left);
    // the node's start that succeeds sees the crash, and the other boot
    const after = openDataStore(d, { sync: 'os' });
    expect(after.uncleanStart).toBe(true);
    expect(history(after).get('k0')).toBeUndefined();
    await after.close();
    // closed by a node that started, the lock goes: the next start is clean
    expect(existsSync(join(d, 'node.lock'))).toBe(false);
    const clean = openDataStore(d, { sync: 'os' });
    stores.push(clean);
    expect(clean.uncleanStart).toBe(false);
  });
});

describe('a failed write on a full disk', () => {
  const eio = Object.assign(new Error('Input/output error'), { code: 5 });
  it('says the disk is full when LMDB reports EIO with no space left, the EIO otherwise', () => {
    expect(writeErrorText(eio, () => 0)).toBe('No space left on device (ENOSPC: 0 bytes free; LMDB reported it as Input/output error (EIO))');
    expect(writeErrorText(eio, () => 10 * 1024 ** 3)).toBe('Input/output error (EIO)');
    expect(writeErrorText(eio, () => undefined)).toBe('Input/output error (EIO)');
    const enospc = Object.assign(new Error('No space left on device'), { code: 28 });
    expect(writeErrorText(enospc, () => 0)).toBe('No space left on device (ENOSPC)');
  });
});
