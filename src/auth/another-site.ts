/**
 * Whether a browser sent a request on behalf of a page of another site: such a page can make an
 * operator's browser send wrong admin tokens (a navigation, a form, a WebSocket), which the guess
 * limit counts against the operator's address and then refuses the right token too (review "web").
 * Admin tokens arriving this way are refused unchecked and uncounted.
 */

/** A request's header by its lower-case name (uWS `getHeader`, or a `Headers` object's `get`). */
export type HeaderOf = (name: string) => string | null | undefined;

/**
 * True for `Sec-Fetch-Site: cross-site` or `same-site` (another port of the same host is a page the
 * node did not serve); without fetch metadata (Chromium sends none on a WebSocket upgrade), for an
 * `Origin` of another host than `Host`, or `null`: a sandboxed or `data:` frame, which any page can
 * make (review "diff28"). `none` (typed in the address bar) and `same-origin` pass, and so does a
 * client that is not a browser (neither header). A page of the node's own under a no-referrer policy
 * would send its forms with `Origin: null` where a browser sends no fetch metadata (plain HTTP to a
 * non-loopback address): the board says `Referrer-Policy: same-origin` for that (review "diff29").
 */
export function fromAnotherSite(header: HeaderOf): boolean {
  const site = header('sec-fetch-site');
  if (site) return site === 'cross-site' || site === 'same-site';
  const origin = header('origin');
  if (!origin) return false;
  if (origin === 'null') return true;
  try {
    return new URL(origin).host !== (header('host') ?? '');
  } catch {
    return true;
  }
}
