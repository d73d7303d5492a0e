/** The push webhook's URL taken apart, and how URLs are shown in logs and errors without their secrets. */

/** TIER_PUSH_WEBHOOK_URL taken apart: what is fetched, the authorization its userinfo gives, and how it is shown. */
export interface WebhookTarget {
  /** the URL POSTed to: without userinfo (fetch refuses a URL with credentials) or fragment */
  url: string;
  /** `Basic <base64 of user:password>` when the URL has a userinfo */
  authorization?: string;
  /** for logs, errors and `/debug/diagnose`: the password (or a lone user) and every query value as `***` */
  shown: string;
}

/**
 * Takes the webhook URL apart. Credentials in it become an `Authorization: Basic` header rather
 * than a refusal: a receiver behind a gateway that asks for Basic auth is common, and a userinfo
 * is how REDIS_URL and NATS_URL carry theirs (and curl reads it the same way); the signature still
 * proves the sender. The query stays in the URL fetched (a receiver keyed by `?api_key=`) but is
 * never shown. Throws a TypeError on a URL that does not parse, or (showing it masked) on
 * credentials Basic cannot carry: not valid percent-encoding, a colon in the user name. Here, so
 * the start refuses what the sender (ports/push-queue/push-webhook.ts) could not send.
 */
export function webhookTarget(raw: string): WebhookTarget {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new TypeError('not a URL');
  }
  const shown = shownUrl(u);
  let authorization: string | undefined;
  if (u.username !== '' || u.password !== '') {
    let user: string, password: string;
    try {
      [user, password] = [decodeURIComponent(u.username), decodeURIComponent(u.password)];
    } catch {
      throw new TypeError(`its credentials are not valid percent-encoding: ${shown}`);
    }
    // RFC 7617: the user-id of Basic cannot hold a colon
    if (user.includes(':')) throw new TypeError(`its user name holds a colon (%3A), which Basic authorization cannot carry: ${shown}`);
    authorization = `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;
  }
  u.username = '';
  u.password = '';
  u.hash = '';
  return { url: u.href, ...(authorization !== undefined ? { authorization } : {}), shown };
}

/**
 * A URL as logs and errors show it: the password (a lone user name: the userinfo), each path
 * segment of 16 characters or more (Slack- and Teams-style hooks carry their secret there; a route
 * name is shorter) and the query's values as `***`: `https://hooks.example.com/services/T0/B0/***`.
 */
export function shownUrl(u: URL): string {
  const userinfo = u.password !== '' ? `${u.username}:***@` : u.username !== '' ? '***@' : '';
  const path = u.pathname.split('/').map((s) => (s.length >= 16 ? '***' : s)).join('/');
  return `${u.protocol}//${userinfo}${u.host}${path}${maskedQuery(u.search)}`;
}

/** `shownUrl` of a URL given as text; one that does not parse is not shown at all. */
export function shownUrlText(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  try {
    return shownUrl(new URL(raw));
  } catch {
    return '(not a URL)';
  }
}

/** A URL's `?…` with each value (or a parameter without one, whole) as `***`: `?api_key=***&***`. */
function maskedQuery(search: string): string {
  if (search === '') return '';
  return `?${search.slice(1).split('&').map((p) => (p.includes('=') ? `${p.slice(0, p.indexOf('='))}=***` : '***')).join('&')}`;
}
