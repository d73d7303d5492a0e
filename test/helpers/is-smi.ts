import { setFlagsFromString } from 'node:v8';

// lets a test ask V8 whether a value is a small integer (stored in the object, not boxed as a heap number)
setFlagsFromString('--allow-natives-syntax');

/** Whether V8 holds `x` as a small integer: a field holding one costs no heap number of its own. */
export const isSmi = new Function('x', 'return %IsSmi(x)') as (x: number) => boolean;
