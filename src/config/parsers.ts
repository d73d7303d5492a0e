/**
 * The parsers of configuration values: each reads one setting as written (environment text or a
 * CONFIG_FILE value) and throws a ConfigError naming the key, never echoing a secret.
 */
import { accessSync, constants } from 'node:fs';
import { isIP } from 'node:net';
import { parseSecretKey } from '../auth/secret-box.js';
import { natsConnectTarget, redactUrl } from './backend-urls.js';
import { parseProxy } from './proxy.js';
import { shownUrl, webhookTarget, type WebhookTarget } from './shown-url.js';

export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly code = 'config_invalid';
}

export type Parser<T> = (raw: unknown, key: string) => T;

/** A decimal integer as written: `Number()` alone reads "0x1F90" as 8080 and "1e3" as 1000. */
const DECIMAL = /^[+-]?[0-9]+$/;
export const int =
  (min: number, max: number): Parser<number> =>
  (raw, key) => {
    // a string or a number only: String([8080]) is "8080", so a CONFIG_FILE list passed as a port
    const n = typeof raw === 'number' ? raw : typeof raw === 'string' && DECIMAL.test(raw.trim()) ? Number(raw.trim()) : NaN;
    if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${key}: expected an integer in ${min}..${max}, got ${JSON.stringify(raw)}`);
    return n;
  };
/** 0 (off) or a period of at least `min` ms: at 1 ms the resident-size read took 4 % of an idle node's core (review "config") */
export const offOrAtLeast =
  (min: number, max: number): Parser<number> =>
  (raw, key) => {
    const n = int(0, max)(raw, key);
    if (n !== 0 && n < min) throw new ConfigError(`${key}: expected 0 (off) or ${min}..${max}, got ${JSON.stringify(raw)}`);
    return n;
  };
/** OTEL_TRACES_SAMPLER_ARG as OpenTelemetry's SDKs read it: a decimal, with an exponent too, never hex */
export const SAMPLER_RATIO = /^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
/** `0.25`, `1`, `.5`: decimal as written (`Number` also takes `0x0` and `5e-1`: `TIER_SHED_MEMORY=0x0` turned shedding off) */
const DECIMAL_FRACTION = /^(?:\d+(?:\.\d*)?|\.\d+)$/;
export const fraction: Parser<number> = (raw, key) => {
  const n = typeof raw === 'number' ? raw : DECIMAL_FRACTION.test(String(raw).trim()) ? Number(String(raw).trim()) : NaN;
  if (!Number.isFinite(n) || n < 0 || n > 1 || String(raw).trim() === '') throw new ConfigError(`${key}: expected a number in 0..1, got ${JSON.stringify(raw)}`);
  return n;
};
export const text: Parser<string> = (raw, key) => {
  if (typeof raw !== 'string' || raw.length === 0) throw new ConfigError(`${key}: expected a non-empty string`);
  return raw;
};
/**
 * NODE_ID: a pod name, a Nomad allocation's `web.api[0]`, an ECS task's ARN; only what breaks is
 * refused: a `{` or `}` would move its Redis keys' hash tag, whitespace or a control character its log lines.
 */
export const nodeIdText: Parser<string> = (raw, key) => {
  const v = text(raw, key);
  if (v.length > 256 || /[{}\s\p{Cc}]/u.test(v)) throw new ConfigError(`${key}: ${JSON.stringify(v)} must be 1..256 characters without braces, whitespace or control characters`);
  return v;
};
/** HOST, ADMIN_HOST: an IP address (IPv6 with or without brackets) or a host name, trimmed; `' '` and `[x]` bound nowhere and read as a port in use. */
export const listenHost: Parser<string> = (raw, key) => {
  const v = text(raw, key).trim();
  const host = v.startsWith('[') && v.endsWith(']') && isIP(v.slice(1, -1)) === 6 ? v.slice(1, -1) : v;
  // labels of letters, digits, `-` and `_` (compose service names), a trailing dot allowed
  if (isIP(host) === 0 && !/^(?=.{1,254}$)[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/.test(host)) {
    throw new ConfigError(`${key}: ${JSON.stringify(raw)} is neither an IP address nor a host name`);
  }
  return host;
};
/**
 * Shortest secrets accepted (characters). JWT_SECRET is an HS256 key: RFC 7518 §3.2 asks for 256
 * bits. ADMIN_TOKEN is a bearer token compared whole: 24 random characters are past online guessing.
 * Generated ones are longer (32 and 43).
 */
export const SECRET_MIN_CHARS = { ADMIN_TOKEN: 24, JWT_SECRET: 32 } as const;
export const MAKE_SECRET = '`openssl rand -base64 32`';

/**
 * Refuses what is a placeholder rather than a secret: the `change-me-…` values of deploy/k8s (so a
 * copied manifest cannot run as shipped) and one character repeated. The value is never echoed.
 */
function refusePlaceholder(s: string, key: string, make: string): void {
  if (/change-?me/i.test(s)) throw new ConfigError(`${key}: still a placeholder (it contains "change-me"); set a random value of your own, e.g. ${make}`);
  // a value of one or two characters is refused for its length (the next check), not as repeated
  if (s.length > 2 && /^(.)\1*$/.test(s.trim())) throw new ConfigError(`${key}: one character repeated is not a secret; set a random value, e.g. ${make}`);
}

export const secret =
  (minChars: number): Parser<string> =>
  (raw, key) => {
    const s = text(raw, key);
    refusePlaceholder(s, key, MAKE_SECRET);
    if (s.length < minChars) throw new ConfigError(`${key}: must be at least ${minChars} characters, got ${s.length}; make one with ${MAKE_SECRET}`);
    // the API tells the admin token from a user JWT by its shape, and limits guesses of it by that
    if (minChars === SECRET_MIN_CHARS.ADMIN_TOKEN && /^[\w-]+\.[\w-]+\.[\w-]*$/.test(s)) {
      throw new ConfigError(`${key}: shaped like a JWT (three parts joined by dots), which the API takes for a user token; make one with ${MAKE_SECRET}`);
    }
    return s;
  };
/** Secrets comma-separated (or a JSON list in CONFIG_FILE), each checked as `secret(minChars)` checks one: a rotation's other values. */
export const secretList =
  (minChars: number): Parser<readonly string[]> =>
  (raw, key) =>
    listed(raw, key).map((s, i) => secret(minChars)(s, `${key}[${i}]`));
/** The items of a comma-separated value (or a JSON list in CONFIG_FILE), trimmed, empty ones left out. */
const listed = (raw: unknown, key: string): unknown[] =>
  (Array.isArray(raw) ? raw : text(raw, key).split(',')).map((s: unknown) => (typeof s === 'string' ? s.trim() : s)).filter((s: unknown) => s !== '');
/** A file the node reads (a certificate, a credentials file): refused at start when it cannot be read, not at the first connect. */
export const readableFile: Parser<string> = (raw, key) => {
  const path = text(raw, key);
  try {
    accessSync(path, constants.R_OK);
  } catch (err) {
    throw new ConfigError(`${key}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return path;
};
/** Proxies comma-separated (or a JSON list in CONFIG_FILE): addresses and CIDR blocks. */
export const proxyList: Parser<readonly string[]> = (raw, key) =>
  listed(raw, key).map((p, i) => {
    try {
      parseProxy(text(p, `${key}[${i}]`));
    } catch (err) {
      throw new ConfigError(`${key}[${i}]: ${(err as Error).message}`);
    }
    return p as string;
  });
/** Host names comma-separated (or a JSON list in CONFIG_FILE), `*` for any. */
export const hostNames: Parser<readonly string[]> = (raw, key) =>
  (Array.isArray(raw) ? raw : text(raw, key).split(',')).map((n: unknown, i: number) => {
    const name = text(typeof n === 'string' ? n.trim() : n, `${key}[${i}]`);
    if (name !== '*' && !/^[A-Za-z0-9.-]+$/.test(name)) throw new ConfigError(`${key}[${i}]: "${name}" is not a host name (letters, digits, dots and hyphens, no port)`);
    return name;
  });
export const secretKey: Parser<string> = (raw, key) => {
  const s = text(raw, key);
  refusePlaceholder(s, key, '`openssl rand -hex 32`');
  try {
    parseSecretKey(s, key);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  return s;
};
export const secretKeyList: Parser<string> = (raw, key) => {
  const s = text(raw, key);
  s.split(',').forEach((k, i) => secretKey(k, `${key}[${i}]`));
  return s;
};
const SHARED_SECRETS = ['JWT_SECRET', 'ADMIN_TOKEN', 'TIER_SECRET_KEY'];
export const secretNames: Parser<readonly string[]> = (raw, key) => {
  const names = text(raw, key).split(',').map((n) => n.trim()).filter(Boolean);
  const bad = names.filter((n) => !SHARED_SECRETS.includes(n));
  if (bad.length > 0) throw new ConfigError(`${key}: ${bad.join(', ')} is not a shared secret (expected some of ${SHARED_SECRETS.join(', ')})`);
  return names;
};
export const bool: Parser<boolean> = (raw, key) => {
  if (typeof raw === 'boolean') return raw;
  const s = String(raw).toLowerCase();
  if (['1', 'true', 'yes'].includes(s)) return true;
  if (['0', 'false', 'no', ''].includes(s)) return false;
  throw new ConfigError(`${key}: expected 1/0/true/false, got ${JSON.stringify(raw)}`);
};
export const oneOf =
  <T extends string>(values: readonly T[]): Parser<T> =>
  (raw, key) => {
    if (typeof raw !== 'string' || !(values as readonly string[]).includes(raw)) throw new ConfigError(`${key}: expected one of ${values.join(', ')}, got ${JSON.stringify(raw)}`);
    return raw as T;
  };
/**
 * A URL of one of `schemes` (`list`: several, comma-separated). Errors show it through `redactUrl`:
 * a backend URL carries its password, and the message lands in logs.
 */
export const url =
  (schemes: string[], list = false): Parser<string> =>
  (raw, key) => {
    const s = text(raw, key);
    const parts = list ? s.split(',').map((p) => p.trim()).filter((p) => p.length > 0) : [s];
    if (parts.length === 0) throw new ConfigError(`${key}: expected a non-empty string`);
    for (const part of parts) {
      let parsed: URL;
      try {
        parsed = new URL(part);
      } catch {
        throw new ConfigError(`${key}: not a URL: ${redactUrl(part)}`);
      }
      // shown as logs show it: a collector's or hook's token may sit in its path or query (review diff9)
      if (!schemes.includes(parsed.protocol)) throw new ConfigError(`${key}: expected a ${schemes.join(' or ')} URL, got ${shownUrl(parsed)}`);
      try {
        decodeURIComponent(parsed.username + parsed.password);
      } catch {
        // the client would throw it later, with a stack and without the setting's name
        throw new ConfigError(`${key}: its user, password or token holds a % that starts no percent-escape: write % as %25`);
      }
    }
    if (list) {
      try {
        natsConnectTarget(s);
      } catch (err) {
        throw new ConfigError((err as Error).message);
      }
    }
    return s;
  };
/**
 * TIER_PUSH_WEBHOOK_URL: an http(s) URL whose credentials, if any, can be sent as a Basic
 * authorization (`webhookTarget`). Errors show it masked: its password and query values are secrets.
 */
export const webhookUrl: Parser<string> = (raw, key) => {
  const s = text(raw, key);
  let target: WebhookTarget;
  try {
    target = webhookTarget(s);
  } catch (err) {
    throw new ConfigError(`${key}: ${(err as Error).message}`);
  }
  if (!/^https?:\/\//.test(target.url)) throw new ConfigError(`${key}: expected a https: or http: URL, got ${target.shown}`);
  return s;
};
