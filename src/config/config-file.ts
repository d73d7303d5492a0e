/** CONFIG_FILE: read and parsed as JSON, its errors placed by line and column without echoing the text. */
import { readFileSync } from 'node:fs';
import { ConfigError } from './parsers.js';

export function readConfigFile(path: string | undefined): Record<string, unknown> {
  if (path === undefined || path === '') return {};
  let parsed: unknown;
  let text: string;
  try {
    // a byte-order mark (Windows editors) is no reason to refuse the file
    text = readFileSync(path, 'utf8').replace(/^\uFEFF/, '');
  } catch (err) {
    throw new ConfigError(`CONFIG_FILE: cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`CONFIG_FILE: ${path} is not valid JSON${whereInvalid(text, err)}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ConfigError(`CONFIG_FILE: ${path} must hold a JSON object`);
  return parsed as Record<string, unknown>;
}

/**
 * Where JSON.parse stopped, as a line and column when its message says (V8 quotes the text around
 * other errors: a secret written unquoted or in single quotes showed its first characters; review
 * "logs"), never the text itself.
 */
function whereInvalid(text: string, err: unknown): string {
  const at = /at position (\d+)/.exec(err instanceof Error ? err.message : '');
  if (at === null) return ' (a value unquoted or in single quotes, or a trailing comma?)';
  const before = text.slice(0, Number(at[1]));
  const line = before.split('\n').length;
  return ` at line ${line}, column ${before.length - before.lastIndexOf('\n')}`;
}
