/**
 * Hub protocol v1: the frames a hub and the server exchange over `/hub/v1`.
 *
 * Every frame is one WebSocket binary message holding one plain msgpack map. Key `t` is the
 * frame type (a small unsigned integer, see `FrameType`); the other keys are short strings so a
 * C firmware can parse frames with any msgpack library. Unknown keys are ignored, which is how
 * later minor versions add fields. PROTOCOL.md is the prose contract; this file is its types.
 */

export const PROTOCOL_VERSION = 1;

/** Frame type codes. Stable: a code is never reused for another meaning. */
export const FrameType = {
  hello: 1,
  welcome: 2,
  heartbeat: 3,
  report: 4,
  event: 5,
  ack: 6,
  command: 7,
  result: 8,
  devices: 9,
  error: 10,
  reconnect: 11,
  bye: 12,
} as const;
export type FrameTypeName = keyof typeof FrameType;
export type FrameTypeCode = (typeof FrameType)[FrameTypeName];

/** Attribute values a device may report or be asked to take. */
export type AttrValue = string | number | boolean | null;
export type Attrs = Record<string, AttrValue>;

/** hub → server, first frame after the upgrade. */
export interface HelloFrame {
  t: 1;
  /** protocol version the hub speaks */
  v: number;
  /** boot id: changes when the hub's sequence counter restarts (reboot, factory reset) */
  b: string;
  /** firmware version */
  fw?: string;
}

/** server → hub, answer to hello: the session parameters. */
export interface WelcomeFrame {
  t: 2;
  v: number;
  /** session epoch: increases at every new session of this hub */
  ep: number;
  /** heartbeat interval the hub must keep, ms */
  hb: number;
  /** the server closes the session after this long without any frame, ms */
  idle: number;
  /** largest frame the server accepts, bytes */
  max: number;
  /** server clock, ms since the Unix epoch */
  ts: number;
  /** last sequence number the server accepted for this boot id (0 if none): resend from s+1 */
  s: number;
  /** desired-minus-reported per device: attributes the hub should apply now */
  dl: Record<string, Attrs>;
}

/** either way; the server answers a hub heartbeat with one carrying its clock. */
export interface HeartbeatFrame {
  t: 3;
  ts?: number;
}

/** hub → server: attribute changes of one or more sub-devices. */
export interface ReportFrame {
  t: 4;
  /** sequence number, increasing by one per report/event/devices frame within a boot id */
  s: number;
  /** per device id, the attributes that changed */
  r: Record<string, Attrs>;
  /** hub clock when measured, ms (optional) */
  ts?: number;
}

/** hub → server: a device event (button press, leak alarm, tamper). */
export interface EventFrame {
  t: 5;
  s: number;
  d: string;
  /** event name, e.g. `double_press`, `leak` */
  e: string;
  p?: Attrs;
  ts?: number;
}

/** server → hub: every frame with sequence ≤ s is accepted (cumulative). */
export interface AckFrame {
  t: 6;
  s: number;
}

/** server → hub: run a method on a device. `m: "set"` with `p` as attributes sets state. */
export interface CommandFrame {
  t: 7;
  /** correlation id, unique among this session's pending commands */
  id: number;
  d: string;
  m: string;
  p: Record<string, unknown>;
  /** the server stops waiting after this many ms; the hub may drop the command after it */
  to: number;
}

/** hub → server: the outcome of a command. */
export interface ResultFrame {
  t: 8;
  id: number;
  ok: boolean;
  /** result value when ok (for `set`: the device's new attributes) */
  r?: unknown;
  /** error code string when not ok */
  e?: string;
  msg?: string;
}

export interface DeviceInfo {
  /** device id, unique within the hub */
  d: string;
  /** kind: sensor.temperature, sensor.door, switch, plug, lock, curtain, ... */
  k: string;
  /** model (optional) */
  m?: string;
}

/** hub → server: sub-device list sync (full list, or joins and leaves). */
export interface DevicesFrame {
  t: 9;
  s: number;
  /** true when `j` is the complete list: devices not in it have left */
  f?: boolean;
  j?: DeviceInfo[];
  l?: string[];
}

/** either way: something went wrong; `ref` names the frame it answers (seq or command id). */
export interface ErrorFrame {
  t: 10;
  /** numeric code from the error table */
  c: number;
  /** string code from the error table */
  e: string;
  /** true when retrying later may succeed */
  tmp: boolean;
  msg?: string;
  /** the sequence number or command id of the frame it answers */
  ref?: number;
  /** the field at fault, as a path (`r.lamp-1.on`, `j[3].d`), for validation errors */
  f?: string;
}

/** server → hub: close and reconnect after `after` ms (to `url` if given). */
export interface ReconnectFrame {
  t: 11;
  after: number;
  url?: string;
  e?: string;
}

/** either way: the sender is closing the session on purpose. */
export interface ByeFrame {
  t: 12;
  e?: string;
  msg?: string;
}

export type HubToServerFrame =
  | HelloFrame
  | HeartbeatFrame
  | ReportFrame
  | EventFrame
  | ResultFrame
  | DevicesFrame
  | ErrorFrame
  | ByeFrame;

export type ServerToHubFrame =
  | WelcomeFrame
  | HeartbeatFrame
  | AckFrame
  | CommandFrame
  | ErrorFrame
  | ReconnectFrame
  | ByeFrame;

export type Frame = HubToServerFrame | ServerToHubFrame;
