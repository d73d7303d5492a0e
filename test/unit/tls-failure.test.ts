/** What a failed Redis connection is said to mean (src/ports/tls-failure.ts), from the codes Node gives. */
import { describe, expect, it } from 'vitest';
import { redisTlsHint } from '../../src/ports/tls-failure.js';

const failed = (code: string) => Object.assign(new Error(code), { code });

describe('redisTlsHint', () => {
  it('names a missing client certificate for TLS 1.3, and for TLS 1.2 only when none was given (a 1.2 handshake failure has other causes)', () => {
    expect(redisTlsHint(failed('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED'), 'rediss://h:6380')).toMatch(/asks for a client certificate/);
    expect(redisTlsHint(failed('ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE'), 'rediss://h:6380')).toMatch(/asks for a client certificate/);
    expect(redisTlsHint(failed('ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE'), 'rediss://h:6380', true)).toBe('');
  });

  it('names a client certificate the server refused: another CA, or expired', () => {
    for (const code of ['ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED']) {
      expect(redisTlsHint(failed(code), 'rediss://h:6380', true), code).toMatch(/refused the client certificate of REDIS_TLS_CERT_FILE/);
    }
  });
});
