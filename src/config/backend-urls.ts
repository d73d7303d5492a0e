/**
 * The backend URLs (NATS_URL, REDIS_URL) carry credentials in their userinfo. Everything that
 * shows one (configuration errors, log lines, `/readyz`) shows it through `redactUrl`; the NATS
 * client is given the credentials as options, since it ignores them in a server URL.
 */

/** `scheme://userinfo@`: the authority ends at the first `/`, `?` or `#`, the userinfo at its last `@` (as WHATWG URL parses it). */
const USERINFO = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)@/i;
const USERINFO_ANYWHERE = new RegExp(USERINFO.source.slice(1), 'gi');

/**
 * The URL (or comma-separated URLs) with every password shown as `***`: `nats://user:***@host:4222`.
 * A userinfo without a colon is masked whole (`nats://***@host`: NATS reads it as a token). An `@`
 * outside any `scheme://` authority (not a URL) hides all before it. Never throws.
 */
export function redactUrl(url: string): string {
  const masked = url.replace(USERINFO_ANYWHERE, (_all, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(':');
    return `${scheme}${colon < 0 ? '***' : `${userinfo.slice(0, colon)}:***`}@`;
  });
  if (!masked.replace(USERINFO_ANYWHERE, '').includes('@')) return masked;
  return `***${masked.slice(masked.lastIndexOf('@'))}`;
}

/** What the NATS client needs from NATS_URL: servers without userinfo, and the credentials as options. */
export interface NatsConnectTarget {
  servers: string[];
  user?: string;
  pass?: string;
  token?: string;
  /** a `tls://` server was named: TLS required of every server (the client alone drops the scheme and would talk plaintext to one that offers none) */
  tls?: Record<string, never>;
}

/** A userinfo part, percent-escapes decoded; an escape that is not one is named, not a bare URIError. */
function decoded(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new TypeError('NATS_URL: its user, password or token holds a % that starts no percent-escape: write % as %25');
  }
}

/**
 * Splits NATS_URL (several servers separated by commas) into bare servers and credentials:
 * `user:pass@` gives `user`/`pass`, a lone `token@` gives `token` (percent-escapes decoded).
 * Throws when two servers name different credentials: the client has one set for all of them.
 * One `tls://` server requires TLS of all (`tls`): the client has one setting for all of them too.
 */
export function natsConnectTarget(url: string): NatsConnectTarget {
  const target: NatsConnectTarget = { servers: [] };
  let seen: string | undefined;
  for (const raw of url.split(',').map((s) => s.trim()).filter((s) => s.length > 0)) {
    if (/^tls:\/\//i.test(raw)) target.tls = {};
    const m = USERINFO.exec(raw);
    if (!m) {
      target.servers.push(raw);
      continue;
    }
    target.servers.push(`${m[1]}${raw.slice(m[0].length)}`);
    const userinfo = m[2]!;
    if (seen !== undefined && seen !== userinfo) throw new TypeError(`NATS_URL: the servers name different credentials (${redactUrl(url)}); give one user for all`);
    seen = userinfo;
    const colon = userinfo.indexOf(':');
    if (colon < 0) target.token = decoded(userinfo);
    else {
      target.user = decoded(userinfo.slice(0, colon));
      target.pass = decoded(userinfo.slice(colon + 1));
    }
  }
  return target;
}
