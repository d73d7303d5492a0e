/**
 * Hints for a backend connection that failed at TLS, named in the error a node exits with: the bare
 * symptom (`self-signed certificate`, `read ECONNRESET`, `connect ETIMEDOUT`) sent an SRE looking at
 * the network when the URL's scheme or the trusted CAs were what to change (review "cloud", F5).
 */

/** Node's codes for a server certificate this process does not trust, or that names another host. */
const UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_UNTRUSTED', 'ERR_TLS_CERT_ALTNAME_INVALID',
]);

const codeOf = (err: Error): string | undefined => {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
};

/** True when the server's certificate was refused: not trusted, expired, or not naming the host connected to. */
export function untrustedCertificate(err: Error): boolean {
  return UNTRUSTED.has(codeOf(err) ?? '');
}

/**
 * What to check for a Redis connection that failed, or '' when the failure says nothing of TLS:
 * a TLS-only server resets a plain connection, and a plain server never answers a TLS handshake.
 */
export function redisTlsHint(err: Error, url: string, clientCert = false): string {
  const tls = url.startsWith('rediss:');
  if (untrustedCertificate(err)) {
    return " (the server's certificate is not trusted: give its CA in REDIS_TLS_CA_FILE or NODE_EXTRA_CA_CERTS, and name in REDIS_URL a host the certificate names)";
  }
  const code = codeOf(err);
  // TLS 1.3's alert for a client that sent none; 1.2 servers send a bare handshake failure, for a
  // missing certificate among other causes (no common cipher): said only when none was given
  if (code === 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' || (tls && !clientCert && code === 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE')) {
    return ' (the server asks for a client certificate: give it in REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE)';
  }
  if (code === 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA' || code === 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE' || code === 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED') {
    return " (the server refused the client certificate of REDIS_TLS_CERT_FILE: it is not of a CA the server trusts, or has expired)";
  }
  if (!tls && (code === 'ECONNRESET' || code === 'EPIPE')) return ' (a Redis that requires TLS resets a plain connection: if it does, use rediss://)';
  if (tls && code === 'ETIMEDOUT') return ' (a Redis without TLS never answers the TLS handshake: if it has none, use redis://; else check the host and port)';
  return '';
}
