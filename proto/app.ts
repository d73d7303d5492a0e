/**
 * App protocol v1 over `/app/v1`: JSON text frames by default, msgpack binary frames with
 * `?enc=msgpack`. Every message is one map with `op`. Requests carry a client-chosen `id` that the
 * answer (`ok` or `err`) repeats; events carry none.
 */
import type { Attrs, DeviceInfo } from './frames.js';

export type AppRequest =
  | { op: 'sub'; id: number; home: string }
  | { op: 'unsub'; id: number; home: string }
  | {
      op: 'cmd';
      id: number;
      hub: string;
      device: string;
      set?: Attrs;
      method?: string;
      params?: Record<string, unknown>;
      timeoutMs?: number;
    }
  | { op: 'ping'; id: number };

export type AppReply =
  | { op: 'ok'; id: number; result?: unknown }
  | { op: 'err'; id?: number; code: string; num: number; temporary: boolean; msg: string; field?: string; hubCode?: string };

/** What happened at a hub: its devices' state and events, its device list, its connection. */
export type HubEvent =
  | { kind: 'state'; home: string; hub: string; device: string; attrs: Attrs; version: number; ts: number }
  | { kind: 'event'; home: string; hub: string; device: string; event: string; params?: Attrs; ts: number }
  | { kind: 'devices'; home: string; hub: string; joined: DeviceInfo[]; left: string[]; ts: number }
  | { kind: 'online'; home: string; hub: string; node: string; ts: number }
  | { kind: 'offline'; home: string; hub: string; reason: string; ts: number };

/**
 * A hub event as published on `evt.<shard>.<homeId>.<hubId>` and as apps receive it: the same map,
 * so a node passes the bus payload's bytes through to msgpack subscribers without decoding them.
 */
export type AppEventMessage = { op: 'evt' } & HubEvent;

/** Every message of the app socket, either way. */
export type AppWireMessage = AppRequest | AppReply | AppEventMessage;
