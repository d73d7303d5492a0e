/**
 * Run as its own process by dir-lock.test.ts: a second process on a DATA_DIR, told what to do by
 * lines on stdin, answering one line each on stdout.
 *   open DIR AT [os]  spin until AT (ms epoch, the instant another process opens too), open the store
 *                     (DATA_SYNC=os with `os`): `opened` or `refused <message>`
 *   fill N            N history entries in the side environment, flushed: `filled`
 *   close             close the store: `closed`
 * With NO_KOFFI=1 koffi cannot be loaded, as on a platform without its binary.
 */
import Module from 'node:module';
import { createInterface } from 'node:readline';
import { openDataStore, type DataStore } from '../../src/ports/lmdb.js';

if (process.env.NO_KOFFI === '1') {
  const m = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
  const load = m._load;
  m._load = (request, ...rest) => {
    if (request === 'koffi') throw new Error('koffi blocked by the test');
    return load(request, ...rest);
  };
}

let store: DataStore | undefined;
const say = (line: string) => process.stdout.write(`${line}\n`);

for await (const line of createInterface({ input: process.stdin })) {
  const [command, ...args] = line.split(' ');
  if (command === 'open') {
    const [dir, at, sync] = args;
    while (Date.now() < Number(at)) {
      // spin: both processes leave this loop within microseconds of each other
    }
    try {
      store = openDataStore(dir!, { owner: `child ${process.pid}`, ...(sync === 'os' ? { sync: 'os' as const } : {}) });
      say('opened');
    } catch (err) {
      say(`refused ${(err as Error).message}`);
    }
  } else if (command === 'fill') {
    const history = store!.side('history').openDB<string, string>({ name: 'h' });
    for (let i = 0; i < Number(args[0]); i++) void history.put(`k${i}`, `event ${i}`);
    await store!.side('history').flushed;
    say('filled');
  } else if (command === 'close') {
    await store?.close();
    store = undefined;
    say('closed');
  }
}
