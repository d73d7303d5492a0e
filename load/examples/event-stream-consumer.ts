import { Redis } from 'ioredis';
import { unpack } from 'msgpackr';

const redis = new Redis(process.env.REDIS_URL!);
const stream = `${process.env.TIER_REDIS_PREFIX ?? 'tier:'}events`;
let from = process.argv[2] ?? '$'; // a stream id to resume after; '$': only new entries
for (;;) {
  const batch = await redis.xreadBuffer('COUNT', 500, 'BLOCK', 5_000, 'STREAMS', stream, from);
  for (const [, entries] of batch ?? []) {
    for (const [id, fields] of entries) {
      const f = Object.fromEntries(fields.flatMap((v, i) => (i % 2 ? [] : [[v.toString(), fields[i + 1]!]])));
      const [home, epoch] = [f.home!.toString(), f.epoch!.toString()];
      // a `lost` entry: events of the home up to this offset may be missing; reload its state
      if (f.lost) console.log(JSON.stringify({ home, epoch, lostUpTo: Number(f.offset) }));
      // an `erased` entry: the home was erased (its earlier entries are gone); erase what you keep of it
      else if (f.erased) console.log(JSON.stringify({ home, erased: true }));
      // an epoch other than the home's last one: its offsets started again (Redis lost its newest writes): reload its state
      else console.log(JSON.stringify({ home, epoch, offset: Number(f.offset), event: unpack(f.event!) }));
      from = id.toString(); // keep it to resume after a restart (or read with XREADGROUP)
    }
  }
}
