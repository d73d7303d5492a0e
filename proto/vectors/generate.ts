/**
 * Writes the protocol test vectors (proto/vectors/*.json) from the case lists below, using the
 * server's own codec. Run once after changing a case: `node --import tsx proto/vectors/generate.ts`.
 * The JSON files are the committed contract; this script only saves hand-computing hex. It refuses
 * to write a valid case that does not decode back to its frame, or an invalid case that decodes or
 * fails with another code than stated, or a handshake case the server's check answers otherwise.
 */
import { isDeepStrictEqual } from 'node:util';
import { writeFileSync } from 'node:fs';
import { createHmac } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { decodeHubFrame, decodeServerFrame, encode, encodeValue } from '../../src/protocol/codec.js';
import { ProtocolError, TierError } from '../../src/errors.js';
import { readHubCredentials } from '../../src/auth/hub-admission.js';
import { signatureMatches } from '../../src/auth/hub-signature.js';
import type { ErrorCode } from '../errors.js';
import { FrameType, type Frame, type FrameTypeName } from '../frames.js';

type Direction = 'hub-to-server' | 'server-to-hub';
interface ValidCase {
  name: string;
  direction: Direction;
  frame: Frame;
}
interface InvalidCase {
  name: string;
  /** the value to encode, or raw bytes for what an encoder would never write */
  value?: unknown;
  hex?: string;
  /** bytes to drop from the end of the encoded value */
  cut?: number;
  error: ErrorCode;
  field?: string;
  /**
   * the `ref` the error must carry (a report's, event's or devices frame's `s`, a result's `id`, an error
   * frame's `ref`); null: none (bytes that are not msgpack, a hello, heartbeat or bye, a type a hub may not send)
   */
  ref: number | null;
}

const H: Direction = 'hub-to-server';
const S: Direction = 'server-to-hub';
const TS = 1_700_000_000_000; // 2023-11-14T22:13:20Z, ms: beyond 32 bits, so it travels as float64

const valid: Record<FrameTypeName, ValidCase[]> = {
  hello: [
    { name: 'minimal hello', direction: H, frame: { t: 1, v: 1, b: 'b7f3a9c1' } },
    { name: 'hello with firmware version', direction: H, frame: { t: 1, v: 1, b: 'boot-0001', fw: '2.4.1-rc.3' } },
  ],
  welcome: [
    {
      name: 'first session, empty delta',
      direction: S,
      frame: { t: 2, v: 1, ep: 1, hb: 30000, idle: 75000, max: 16384, ts: TS, s: 0, dl: {} },
    },
    {
      name: 'resume after s=41 with a desired-state delta for two devices',
      direction: S,
      frame: {
        t: 2,
        v: 1,
        ep: 7,
        hb: 30000,
        idle: 75000,
        max: 16384,
        ts: TS + 123,
        s: 41,
        dl: { 'plug-1': { on: true }, 'curtain-2': { pos: 75, mode: 'quiet' } },
      },
    },
  ],
  heartbeat: [
    { name: 'hub heartbeat without clock', direction: H, frame: { t: 3 } },
    { name: 'hub heartbeat with clock', direction: H, frame: { t: 3, ts: TS } },
    { name: 'server heartbeat answer with its clock', direction: S, frame: { t: 3, ts: TS + 5 } },
  ],
  report: [
    { name: 'one device, one float attribute', direction: H, frame: { t: 4, s: 1, r: { 'temp-1': { temperature: 21.5 } } } },
    {
      name: 'two devices with hub clock',
      direction: H,
      frame: {
        t: 4,
        s: 2,
        r: { 'temp-1': { temperature: -3.25, humidity: 48 }, 'door-2': { open: true, battery: 87 } },
        ts: TS + 456,
      },
    },
    {
      name: 'string, nil, negative and false attribute values',
      direction: H,
      frame: { t: 4, s: 3, r: { 'lock-3': { state: 'locked', jammed: false, error: null, rssi: -71, lqi: -5 } } },
    },
    {
      name: 'integer attribute beyond 32 bits (float64), negative int16, fraction 0.1',
      direction: H,
      frame: { t: 4, s: 4, r: { 'meter-9': { energy_wh: 5000000000, power_w: -1200, pf: 0.1 } } },
    },
    { name: 'sequence number at the uint32 maximum', direction: H, frame: { t: 4, s: 4294967295, r: { 'temp-1': { temperature: 19 } } } },
    { name: 'sequence number beyond 32 bits (float64)', direction: H, frame: { t: 4, s: 4294967296, r: { 'temp-1': { temperature: 19 } } } },
    {
      name: 'non-ASCII string value (UTF-8)',
      direction: H,
      frame: { t: 4, s: 5, r: { 'plug-1': { label: 'Küche – Kaffeemaschine ☕' } } },
    },
    { name: 'empty string value (a value may be empty, a name may not)', direction: H, frame: { t: 4, s: 6, r: { 'display-1': { text: '' } } } },
  ],
  event: [
    { name: 'button double press', direction: H, frame: { t: 5, s: 6, d: 'button-4', e: 'double_press' } },
    {
      name: 'leak alarm with parameters and hub clock',
      direction: H,
      frame: { t: 5, s: 7, d: 'leak-5', e: 'leak', p: { level: 2, wet: true, zone: null }, ts: TS + 789 },
    },
  ],
  ack: [
    { name: 'ack of nothing yet', direction: S, frame: { t: 6, s: 0 } },
    { name: 'cumulative ack up to 41', direction: S, frame: { t: 6, s: 41 } },
    { name: 'ack with a uint16 sequence number', direction: S, frame: { t: 6, s: 70000 } },
  ],
  command: [
    { name: 'set: turn a plug on', direction: S, frame: { t: 7, id: 1, d: 'plug-1', m: 'set', p: { on: true }, to: 5000 } },
    {
      name: 'set: several attributes, float and negative',
      direction: S,
      frame: { t: 7, id: 2, d: 'thermostat-8', m: 'set', p: { target: 21.5, offset: -2, mode: 'heat' }, to: 5000 },
    },
    {
      name: 'method with nested parameters',
      direction: S,
      frame: { t: 7, id: 300, d: 'lock-3', m: 'set_codes', p: { codes: [1234, 5678], slot: { n: 2, name: 'guest' } }, to: 15000 },
    },
    { name: 'method without parameters', direction: S, frame: { t: 7, id: 65536, d: 'curtain-2', m: 'stop', p: {}, to: 60000 } },
  ],
  result: [
    { name: 'set succeeded: new attributes', direction: H, frame: { t: 8, id: 1, ok: true, r: { on: true } } },
    { name: 'success without a value', direction: H, frame: { t: 8, id: 65536, ok: true } },
    { name: 'success with a non-map value', direction: H, frame: { t: 8, id: 300, ok: true, r: [1, 'two', null] } },
    {
      name: 'unknown device',
      direction: H,
      frame: { t: 8, id: 3, ok: false, e: 'unknown_device', msg: 'no device curtain-9' },
    },
    {
      name: 'command failed, UTF-8 message',
      direction: H,
      frame: { t: 8, id: 4, ok: false, e: 'command_failed', msg: 'Motor blockiert – Vorhang klemmt' },
    },
    { name: 'invalid field, no message', direction: H, frame: { t: 8, id: 5, ok: false, e: 'invalid_field' } },
  ],
  devices: [
    {
      name: 'full list with and without model',
      direction: H,
      frame: {
        t: 9,
        s: 8,
        f: true,
        j: [
          { d: 'temp-1', k: 'sensor.temperature', m: 'TH-01' },
          { d: 'plug-1', k: 'plug' },
        ],
      },
    },
    { name: 'one device joined', direction: H, frame: { t: 9, s: 9, f: false, j: [{ d: 'door-2', k: 'sensor.door', m: 'DW-2' }] } },
    { name: 'one device left', direction: H, frame: { t: 9, s: 10, f: false, l: ['door-2'] } },
    { name: 'join and leave in one frame', direction: H, frame: { t: 9, s: 11, f: false, j: [{ d: 'smoke-6', k: 'sensor.smoke' }], l: ['leak-5'] } },
    { name: 'full list that is empty: every device left', direction: H, frame: { t: 9, s: 12, f: true, j: [] } },
  ],
  error: [
    {
      name: 'hub rejects a command parameter',
      direction: H,
      frame: { t: 10, c: 103, e: 'invalid_field', tmp: false, msg: 'p.pos: must be 0..100', ref: 300 },
    },
    { name: 'hub error without message or ref', direction: H, frame: { t: 10, c: 500, e: 'internal', tmp: true } },
    { name: 'server: rate limited', direction: S, frame: { t: 10, c: 302, e: 'rate_limited', tmp: true, msg: 'too many frames or requests' } },
    { name: 'server: busy, referring to seq 12', direction: S, frame: { t: 10, c: 303, e: 'busy', tmp: true, ref: 12 } },
  ],
  reconnect: [
    { name: 'reconnect after 1.5 s to any node', direction: S, frame: { t: 11, after: 1500 } },
    {
      name: 'node draining: reconnect now to another url',
      direction: S,
      frame: { t: 11, after: 0, url: 'wss://node-2.hubs.example.com/hub/v1', e: 'draining' },
    },
  ],
  bye: [
    { name: 'hub bye without reason', direction: H, frame: { t: 12 } },
    { name: 'hub bye before a reboot', direction: H, frame: { t: 12, e: 'reboot', msg: 'firmware update 2.4.2' } },
    {
      name: 'server bye on takeover',
      direction: S,
      frame: { t: 12, e: 'session_taken_over', msg: 'a newer connection of this hub took the session' },
    },
  ],
};

/** A placeholder string whose encoding `raw` replaces with bytes an encoder would not write. */
const RAW = '@raw@';
const TIMESTAMP32 = 'd6ff6553f100'; // msgpack timestamp ext (-1), 4 bytes of seconds
function raw(value: object, rawHex: string): string {
  const hex = encodeValue(value).toString('hex');
  const marker = encodeValue(RAW).toString('hex');
  if (hex.split(marker).length !== 2) throw new Error('placeholder must occur once');
  return hex.replace(marker, rawHex);
}

/** `value` with one more top-level entry, key and value as raw bytes, after the others (what an encoder would not write). */
function plusEntry(value: Record<string, unknown>, keyHex: string, valueHex: string): string {
  const n = Object.keys(value).length;
  if (n >= 15) throw new Error('fixmap only');
  return (0x80 + n + 1).toString(16) + encodeValue(value).toString('hex').slice(2) + keyHex + valueHex;
}

const manyAttrs = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`a${i}`, i]));
const manyDevices = Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`d${i}`, { x: 1 }]));

const invalid: InvalidCase[] = [
  { name: 'empty message', hex: '', error: 'malformed_frame', ref: null },
  { name: 'truncated: map header promises 3 entries, 2 present', hex: '83a17401a17601', error: 'malformed_frame', ref: null },
  { name: 'truncated inside a string', value: { t: 1, v: 1, b: 'boot-1' }, cut: 1, error: 'malformed_frame', ref: null },
  { name: 'truncated float64', hex: '82a17403a27473cb4278bcfe568000', error: 'malformed_frame', ref: null },
  { name: 'map32 header with more entries than bytes', hex: 'dfffffffffa17403', error: 'malformed_frame', ref: null },
  { name: 'not a map: array', value: [4, 1, {}], error: 'malformed_frame', ref: null },
  { name: 'not a map: integer', value: 4, error: 'malformed_frame', ref: null },
  { name: 'not a map: string', value: 'hello', error: 'malformed_frame', ref: null },
  { name: 'not a map: nil', value: null, error: 'malformed_frame', ref: null },
  { name: 'trailing bytes after the map', hex: '81a17403c0', error: 'malformed_frame', ref: null },
  { name: 'two frames in one message', hex: '81a1740381a17403', error: 'malformed_frame', ref: null },
  { name: 'byte 0xc1 (never used) as a value', hex: raw({ t: 3, x: RAW }, 'c1'), error: 'malformed_frame', ref: null },
  { name: 'byte 0xc1 as the whole message', hex: 'c1', error: 'malformed_frame', ref: null },
  { name: 'ext type: timestamp 32 as an attribute value', hex: raw({ t: 4, s: 1, r: { 'temp-1': { at: RAW } } }, TIMESTAMP32), error: 'malformed_frame', ref: 1 },
  { name: 'ext type: timestamp 32 in an unknown key', hex: raw({ t: 3, x: RAW }, TIMESTAMP32), error: 'malformed_frame', ref: null },
  { name: 'ext type: timestamp 32 as the whole message', hex: TIMESTAMP32, error: 'malformed_frame', ref: null },
  { name: 'ext type: fixext1 type 0 (undefined in some libraries) as ts', hex: raw({ t: 3, ts: RAW }, 'd40000'), error: 'malformed_frame', ref: null },
  { name: 'ext type: ext8 type 1 inside result r', hex: raw({ t: 8, id: 1, ok: true, r: RAW }, 'c70301616263'), error: 'malformed_frame', ref: 1 },
  { name: 'unknown frame type 99', value: { t: 99 }, error: 'unknown_frame_type', field: 't', ref: null },
  { name: 'frame type 0', value: { t: 0 }, error: 'unknown_frame_type', field: 't', ref: null },
  { name: 'server-only frame type from a hub: ack', value: { t: 6, s: 1 }, error: 'unknown_frame_type', field: 't', ref: null },
  { name: 'server-only frame type from a hub: command', value: { t: 7, id: 1, d: 'plug-1', m: 'set', p: {}, to: 5000 }, error: 'unknown_frame_type', field: 't', ref: null },
  { name: 'unknown frame type 13 with an s: named by nothing, its number not consumed', value: { t: 13, s: 2 }, error: 'unknown_frame_type', field: 't', ref: null },
  { name: 'missing frame type', value: { s: 1, r: {} }, error: 'invalid_field', field: 't', ref: null },
  { name: 'frame type as a string', value: { t: '4', s: 1, r: {} }, error: 'invalid_field', field: 't', ref: null },
  { name: 'hello: unsupported version 2', value: { t: 1, v: 2, b: 'boot-1' }, error: 'unsupported_version', field: 'v', ref: null },
  { name: 'hello: version missing', value: { t: 1, b: 'boot-1' }, error: 'invalid_field', field: 'v', ref: null },
  { name: 'hello: boot id missing', value: { t: 1, v: 1 }, error: 'invalid_field', field: 'b', ref: null },
  { name: 'hello: empty boot id', value: { t: 1, v: 1, b: '' }, error: 'invalid_field', field: 'b', ref: null },
  { name: 'hello: boot id of 65 characters', value: { t: 1, v: 1, b: 'b'.repeat(65) }, error: 'invalid_field', field: 'b', ref: null },
  // a bad hello fw or heartbeat ts is dropped, not refused (since 2026-12-06): a report's ts is read
  { name: 'report: negative clock', value: { t: 4, s: 1, r: {}, ts: -1 }, error: 'invalid_field', field: 'ts', ref: 1 },
  { name: 'report: missing seq', value: { t: 4, r: { 'temp-1': { temperature: 21.5 } } }, error: 'invalid_field', field: 's', ref: null },
  { name: 'report: seq negative', value: { t: 4, s: -1, r: { 'temp-1': { temperature: 21.5 } } }, error: 'invalid_field', field: 's', ref: null },
  { name: 'report: seq with a fraction', value: { t: 4, s: 1.5, r: { 'temp-1': { temperature: 21.5 } } }, error: 'invalid_field', field: 's', ref: null },
  { name: 'report: seq as a string', value: { t: 4, s: '1', r: { 'temp-1': { temperature: 21.5 } } }, error: 'invalid_field', field: 's', ref: null },
  { name: 'report: seq beyond 2^53', value: { t: 4, s: 2 ** 53, r: { 'temp-1': { temperature: 21.5 } } }, error: 'invalid_field', field: 's', ref: null },
  { name: 'report: r missing', value: { t: 4, s: 1 }, error: 'invalid_field', field: 'r', ref: 1 },
  { name: 'report: r is an array', value: { t: 4, s: 1, r: [{ temperature: 21.5 }] }, error: 'invalid_field', field: 'r', ref: 1 },
  { name: 'report: device id with a dot', value: { t: 4, s: 1, r: { 'temp.1': { temperature: 21.5 } } }, error: 'invalid_field', field: 'r key', ref: 1 },
  { name: 'report: device id with a NATS wildcard', value: { t: 4, s: 1, r: { 'temp*': { temperature: 21.5 } } }, error: 'invalid_field', field: 'r key', ref: 1 },
  { name: 'report: empty attribute name', value: { t: 4, s: 1, r: { 'temp-1': { '': 21.5 } } }, error: 'invalid_field', field: 'r.temp-1.', ref: 1 },
  { name: 'report: device attributes not a map', value: { t: 4, s: 1, r: { 'temp-1': 21.5 } }, error: 'invalid_field', field: 'r.temp-1', ref: 1 },
  { name: 'report: attribute value is a map', value: { t: 4, s: 1, r: { 'temp-1': { temperature: { c: 21.5 } } } }, error: 'invalid_field', field: 'r.temp-1.temperature', ref: 1 },
  { name: 'report: attribute value is an array', value: { t: 4, s: 1, r: { 'temp-1': { temperature: [21.5] } } }, error: 'invalid_field', field: 'r.temp-1.temperature', ref: 1 },
  { name: 'report: attribute value is binary (bin8)', value: { t: 4, s: 1, r: { 'temp-1': { b: Buffer.from([1]) } } }, error: 'invalid_field', field: 'r.temp-1.b', ref: 1 },
  { name: 'report: attribute value NaN', value: { t: 4, s: 1, r: { 'temp-1': { temperature: NaN } } }, error: 'invalid_field', field: 'r.temp-1.temperature', ref: 1 },
  { name: 'report: attribute value +Infinity', value: { t: 4, s: 1, r: { 'temp-1': { temperature: Infinity } } }, error: 'invalid_field', field: 'r.temp-1.temperature', ref: 1 },
  { name: 'report: attribute string of 1025 characters', value: { t: 4, s: 1, r: { 'temp-1': { note: 'x'.repeat(1025) } } }, error: 'invalid_field', field: 'r.temp-1.note', ref: 1 },
  { name: 'report: 65 attributes for one device (limit 64)', value: { t: 4, s: 1, r: { 'meter-9': manyAttrs } }, error: 'invalid_field', field: 'r.meter-9', ref: 1 },
  { name: 'report: 257 devices in one frame (limit 256)', value: { t: 4, s: 1, r: manyDevices }, error: 'invalid_field', field: 'r', ref: 1 },
  { name: 'event: device id with a dot', value: { t: 5, s: 1, d: 'button.4', e: 'press' }, error: 'invalid_field', field: 'd', ref: 1 },
  { name: 'event: empty event name', value: { t: 5, s: 1, d: 'button-4', e: '' }, error: 'invalid_field', field: 'e', ref: 1 },
  { name: 'event: missing seq', value: { t: 5, d: 'button-4', e: 'press' }, error: 'invalid_field', field: 's', ref: null },
  { name: 'event: params not a map', value: { t: 5, s: 1, d: 'button-4', e: 'press', p: [1] }, error: 'invalid_field', field: 'p', ref: 1 },
  { name: 'result: ok missing', value: { t: 8, id: 1 }, error: 'invalid_field', field: 'ok', ref: 1 },
  { name: 'result: ok as an integer', value: { t: 8, id: 1, ok: 1 }, error: 'invalid_field', field: 'ok', ref: 1 },
  { name: 'result: id missing', value: { t: 8, ok: true }, error: 'invalid_field', field: 'id', ref: null },
  { name: 'result: error code not a string', value: { t: 8, id: 1, ok: false, e: 402 }, error: 'invalid_field', field: 'e', ref: 1 },
  { name: 'result: string in r of 1025 characters', value: { t: 8, id: 1, ok: true, r: { data: 'x'.repeat(1025) } }, error: 'invalid_field', field: 'r.data', ref: 1 },
  { name: 'result: key in r of 65 characters', value: { t: 8, id: 1, ok: true, r: { list: [{ ['k'.repeat(65)]: 1 }] } }, error: 'invalid_field', field: `r.list[0].${'k'.repeat(65)}`, ref: 1 },
  { name: 'result: empty key in r', value: { t: 8, id: 1, ok: true, r: { '': true } }, error: 'invalid_field', field: 'r.', ref: 1 },
  { name: 'result: r a string of 1025 characters', value: { t: 8, id: 1, ok: true, r: 'x'.repeat(1025) }, error: 'invalid_field', field: 'r', ref: 1 },
  { name: 'devices: f as a string', value: { t: 9, s: 1, f: 'yes', j: [] }, error: 'invalid_field', field: 'f', ref: 1 },
  { name: 'devices: j not an array', value: { t: 9, s: 1, j: { d: 'temp-1', k: 'switch' } }, error: 'invalid_field', field: 'j', ref: 1 },
  { name: 'devices: joined device without kind', value: { t: 9, s: 1, j: [{ d: 'temp-1' }] }, error: 'invalid_field', field: 'j[0].k', ref: 1 },
  { name: 'devices: joined device id with a dot', value: { t: 9, s: 1, j: [{ d: 'a.b', k: 'switch' }] }, error: 'invalid_field', field: 'j[0].d', ref: 1 },
  { name: 'devices: left id not a string', value: { t: 9, s: 1, l: ['plug-1', 7] }, error: 'invalid_field', field: 'l[1]', ref: 1 },
  { name: 'devices: f true without j (it would remove every device)', value: { t: 9, s: 1, f: true }, error: 'invalid_field', field: 'j', ref: 1 },
  { name: 'devices: f true with j nil and leaves only', value: { t: 9, s: 2, f: true, j: null, l: ['plug-1'] }, error: 'invalid_field', field: 'j', ref: 2 },
  { name: 'error: tmp missing', value: { t: 10, c: 103, e: 'invalid_field' }, error: 'invalid_field', field: 'tmp', ref: null },
  { name: 'error: numeric code negative', value: { t: 10, c: -1, e: 'internal', tmp: true }, error: 'invalid_field', field: 'c', ref: null },
  { name: 'bye: reason not a string', value: { t: 12, e: true }, error: 'invalid_field', field: 'e', ref: null },
  // well-formed msgpack that breaks a rule of §1: refused naming the frame (`ref`), so a sequenced one is consumed
  { name: 'map key not a string: integer device id', hex: raw({ t: 4, s: 1, r: RAW }, '8107' + encodeValue({ a: 1 }).toString('hex')), error: 'invalid_field', field: 'r', ref: 1 },
  { name: 'map key not a string: bin attribute name', hex: raw({ t: 4, s: 1, r: { 'temp-1': RAW } }, '81c401' + '61' + '01'), error: 'invalid_field', field: 'r.temp-1', ref: 1 },
  { name: 'map key not a string: nil at the top of the frame', hex: plusEntry({ t: 4, s: 1, r: {} }, 'c0', '01'), error: 'invalid_field', field: 'frame', ref: 1 },
  { name: 'ext type: timestamp as the ts of a report, named by its s', hex: raw({ t: 4, s: 2, r: {}, ts: RAW }, TIMESTAMP32), error: 'malformed_frame', field: 'ts', ref: 2 },
  { name: 'ext type in a report cut short: not msgpack, named by nothing', hex: raw({ t: 4, s: 2, r: {}, ts: RAW }, TIMESTAMP32).slice(0, -2), error: 'malformed_frame', ref: null },
  { name: 'string not valid UTF-8: attribute value', hex: raw({ t: 4, s: 1, r: { 'temp-1': { note: RAW } } }, 'a2' + '61ff'), error: 'invalid_field', field: 'r.temp-1.note', ref: 1 },
  { name: 'string not valid UTF-8: overlong encoding in an attribute name', hex: raw({ t: 4, s: 1, r: { 'temp-1': RAW } }, '81' + 'a2c0af' + '01'), error: 'invalid_field', ref: 1 },
  { name: 'string not valid UTF-8: UTF-8 encoded surrogate (CESU-8) in an event name', hex: raw({ t: 5, s: 3, d: 'button-4', e: RAW }, 'a3eda080'), error: 'invalid_field', field: 'e', ref: 3 },
  { name: 'integer past 2^53 - 1: uint64 attribute value 2^53', hex: raw({ t: 4, s: 1, r: { 'temp-1': { count: RAW } } }, 'cf0020000000000000'), error: 'invalid_field', field: 'r.temp-1.count', ref: 1 },
  { name: 'integer past -(2^53 - 1): int64 attribute value -2^63', hex: raw({ t: 4, s: 1, r: { 'temp-1': { count: RAW } } }, 'd38000000000000000'), error: 'invalid_field', field: 'r.temp-1.count', ref: 1 },
  { name: 'key given twice at the top: s 1 then s 9', hex: plusEntry({ t: 4, s: 1, r: {} }, 'a173', '09'), error: 'invalid_field', field: 's', ref: 1 },
  { name: 'key given twice at the top: t 4 then t 3 (a report is not a heartbeat)', hex: plusEntry({ t: 4, s: 1, r: {} }, 'a174', '03'), error: 'invalid_field', field: 't', ref: 1 },
  { name: 'seq as float32 1.0000001: not an exact integer, not rounded', hex: raw({ t: 4, s: RAW, r: {} }, 'ca3f800001'), error: 'invalid_field', field: 's', ref: null },
  { name: 'error frame answering command 7 with an empty msg: named by its ref', value: { t: 10, c: 403, e: 'command_failed', tmp: false, ref: 7, msg: '' }, error: 'invalid_field', field: 'msg', ref: 7 },
];

function hexOf(c: InvalidCase): string {
  if (c.value !== undefined || c.hex === undefined) {
    const full = encodeValue(c.value).toString('hex');
    return c.cut === undefined ? full : full.slice(0, -2 * c.cut);
  }
  return c.hex;
}

/** Drops undefined-valued keys, which the decoder leaves for absent optional fields. */
function defined(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(defined);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => [k, defined(x)]));
  }
  return v;
}

function json(v: unknown): string {
  return JSON.stringify(v);
}

const dir = fileURLToPath(new URL('.', import.meta.url));

for (const [type, cases] of Object.entries(valid) as Array<[FrameTypeName, ValidCase[]]>) {
  const lines: string[] = [];
  for (const c of cases) {
    if (c.frame.t !== FrameType[type]) throw new Error(`${type}/${c.name}: t is ${c.frame.t}`);
    const bytes = encode(c.frame);
    const decoded = c.direction === H ? decodeHubFrame(bytes) : decodeServerFrame(bytes);
    if (!isDeepStrictEqual(defined(decoded), c.frame)) throw new Error(`${type}/${c.name}: decodes to ${json(defined(decoded))}`);
    lines.push(
      `  {\n    "name": ${json(c.name)},\n    "direction": ${json(c.direction)},\n    "hex": ${json(bytes.toString('hex'))},\n    "frame": ${json(c.frame)}\n  }`,
    );
  }
  writeFileSync(`${dir}${type}.json`, `[\n${lines.join(',\n')}\n]\n`);
}

const lines: string[] = [];
for (const c of invalid) {
  const hex = hexOf(c);
  let got: unknown;
  try {
    decodeHubFrame(Buffer.from(hex, 'hex'));
  } catch (err) {
    got = err;
  }
  if (!(got instanceof ProtocolError) || got.code !== c.error || (c.field !== undefined && got.field !== c.field) || (c.ref !== undefined && (got.ref ?? null) !== c.ref)) {
    throw new Error(`invalid/${c.name}: expected ${c.error} ${c.field ?? ''} ref ${String(c.ref)}, got ${String(got)} field=${(got as ProtocolError | undefined)?.field} ref=${(got as ProtocolError | undefined)?.ref}`);
  }
  const field = c.field === undefined ? '' : `,\n    "field": ${json(c.field)}`;
  const ref = c.ref === undefined ? '' : `,\n    "ref": ${json(c.ref)}`;
  lines.push(`  {\n    "name": ${json(c.name)},\n    "hex": ${json(hex)},\n    "error": ${json(c.error)}${field}${ref}\n  }`);
}
writeFileSync(`${dir}invalid.json`, `[\n${lines.join(',\n')}\n]\n`);

/**
 * Signed upgrade requests (PROTOCOL.md 2.1): `signed` is the string the hub signed (absent: the
 * signature is a placeholder); `error` the server's refusal, none when the signature verifies.
 * The timestamp's skew is not part of these: each case is about its header's form and signature.
 */
interface HandshakeCase {
  name: string;
  ts: string;
  signed?: string;
  error?: 'unauthorized' | 'bad_signature';
}
const HS = { secret: 's3cr3t-of-hub-7', hubId: 'hub-7', nonce: 'q9Xb2LmN4pRt7VwZ' };
const handshakes: HandshakeCase[] = [
  { name: 'the example of PROTOCOL.md 2.1', ts: '1700000000', signed: 'hub-7\n1700000000\nq9Xb2LmN4pRt7VwZ' },
  { name: 'a zero-padded clock, signed with the digits it sends', ts: '01700000000', signed: 'hub-7\n01700000000\nq9Xb2LmN4pRt7VwZ' },
  { name: 'a zero-padded clock signed without its zeros', ts: '01700000000', signed: 'hub-7\n1700000000\nq9Xb2LmN4pRt7VwZ', error: 'bad_signature' },
  { name: 'ts with a sign', ts: '+1700000000', error: 'unauthorized' },
  { name: 'ts with a fraction', ts: '1700000000.5', error: 'unauthorized' },
  { name: 'ts of 13 digits', ts: '0001700000000', error: 'unauthorized' },
];
const handshakeLines: string[] = [];
for (const c of handshakes) {
  const signature = c.signed === undefined ? '0'.repeat(64) : createHmac('sha256', HS.secret).update(c.signed).digest('hex');
  const headers = { 'x-hub-id': HS.hubId, 'x-hub-ts': c.ts, 'x-hub-nonce': HS.nonce, 'x-hub-signature': signature };
  let got: string | undefined;
  try {
    const credentials = readHubCredentials((h) => headers[h as keyof typeof headers] ?? '', '');
    if (!signatureMatches(HS.secret, credentials)) got = 'bad_signature';
  } catch (err) {
    got = err instanceof TierError ? err.code : String(err);
  }
  if (got !== c.error) throw new Error(`handshake/${c.name}: expected ${c.error ?? 'admitted'}, got ${got ?? 'admitted'}`);
  const fields = [`"name": ${json(c.name)}`, `"secret": ${json(HS.secret)}`, `"headers": ${json(headers)}`];
  if (c.signed !== undefined) fields.push(`"signed": ${json(c.signed)}`);
  if (c.error !== undefined) fields.push(`"error": ${json(c.error)}`);
  handshakeLines.push(`  {\n    ${fields.join(',\n    ')}\n  }`);
}
writeFileSync(`${dir}handshake.json`, `[\n${handshakeLines.join(',\n')}\n]\n`);
console.log(`wrote ${Object.keys(valid).length} frame files, invalid.json (${invalid.length} cases) and handshake.json (${handshakes.length}) to ${dir}`);
