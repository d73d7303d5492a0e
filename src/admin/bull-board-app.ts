/**
 * bull-board's Hono app for the admin port's bridge (bull-board.ts), in a module of its own so that
 * a node loads bull-board and Hono only when someone opens the board.
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { HonoAdapter } from '@bull-board/hono';
import { serveStatic } from '@hono/node-server/serve-static';
import type { Queue } from 'bullmq';
import { Hono } from 'hono';

/** The board of `queues` under `basePath`; `readOnly` hides the actions that change jobs. */
export function boardApp(basePath: string, queues: readonly Queue[], readOnly: boolean): Hono {
  const serverAdapter = new HonoAdapter(serveStatic);
  serverAdapter.setBasePath(basePath);
  createBullBoard({
    queues: queues.map((q) => new BullMQAdapter(q, { readOnlyMode: readOnly })),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'hubtier queues' } },
  });
  const board = new Hono();
  board.route(basePath, serverAdapter.registerPlugin());
  return board;
}
