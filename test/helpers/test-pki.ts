import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nkeys } from '@nats-io/transport-node';

/** A CA of its own, a server certificate for 127.0.0.1 and localhost, and a client certificate, made with openssl. */
export interface TestPki {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'hubtier-pki-'));
  const at = (name: string) => join(dir, name);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=hubtier test CA', '-keyout', at('ca.key'), '-out', at('ca.crt'));
  writeFileSync(at('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  writeFileSync(at('client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const [name, cn] of [['server', 'localhost'], ['client', 'hubtier-node']] as const) {
    ssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', `/CN=${cn}`, '-keyout', at(`${name}.key`), '-out', at(`${name}.csr`));
    ssl('x509', '-req', '-in', at(`${name}.csr`), '-CA', at('ca.crt'), '-CAkey', at('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', at(`${name}.ext`), '-out', at(`${name}.crt`));
  }
  return { dir, ca: at('ca.crt'), serverCert: at('server.crt'), serverKey: at('server.key'), clientCert: at('client.crt'), clientKey: at('client.key') };
}

/**
 * A NATS server configuration in operator mode (as NGS and `nsc`-made deployments run) and a
 * user's `.creds` file for it: JWTs signed with nkeys, written by hand in the form nats-server reads.
 */
export function makeNatsOperator(dir: string): { config: string; creds: string } {
  const b64 = (x: Uint8Array | string) => Buffer.from(x).toString('base64url');
  const jwt = (signer: ReturnType<typeof nkeys.createOperator>, sub: string, nats: object): string => {
    const header = b64(JSON.stringify({ typ: 'JWT', alg: 'ed25519-nkey' }));
    const claims: Record<string, unknown> = { jti: '', iat: Math.floor(Date.now() / 1000), iss: signer.getPublicKey(), name: sub.slice(0, 8), sub, nats };
    claims.jti = createHash('sha256').update(JSON.stringify(claims)).digest('hex').toUpperCase();
    const body = b64(JSON.stringify(claims));
    return `${header}.${body}.${b64(signer.sign(new TextEncoder().encode(`${header}.${body}`)))}`;
  };
  const [operator, account, user] = [nkeys.createOperator(), nkeys.createAccount(), nkeys.createUser()];
  const unlimited = { subs: -1, data: -1, payload: -1 };
  const accountJwt = jwt(operator, account.getPublicKey(), { type: 'account', version: 2, limits: { ...unlimited, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 } });
  const config = join(dir, 'nats-operator.conf');
  writeFileSync(config, `operator: ${jwt(operator, operator.getPublicKey(), { type: 'operator', version: 2 })}\nresolver: MEMORY\nresolver_preload: { ${account.getPublicKey()}: ${accountJwt} }\n`);
  const creds = join(dir, 'user.creds');
  const userJwt = jwt(account, user.getPublicKey(), { type: 'user', version: 2, pub: {}, sub: {}, ...unlimited });
  writeFileSync(creds, `-----BEGIN NATS USER JWT-----\n${userJwt}\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n${new TextDecoder().decode(user.getSeed())}\n------END USER NKEY SEED------\n`, { mode: 0o600 });
  return { config, creds };
}
