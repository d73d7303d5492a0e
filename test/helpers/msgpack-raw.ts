import { encodeValue } from '../../src/protocol/codec.js';

/** Encodes `value` with the placeholder string `@raw@` replaced by bytes an encoder would not write. */
export function withRaw(value: object, rawHex: string): Buffer {
  const hex = encodeValue(value).toString('hex');
  const marker = encodeValue('@raw@').toString('hex');
  if (hex.split(marker).length !== 2) throw new Error('the placeholder @raw@ must occur once');
  return Buffer.from(hex.replace(marker, rawHex), 'hex');
}
