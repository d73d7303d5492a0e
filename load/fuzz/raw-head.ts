import { connect } from 'node:net';

export type HeadAnswer = { status: number; text: ''; headBody: boolean } | { error: string };

/**
 * A HEAD request on a raw socket, read until the server closes it: the status, and whether any byte
 * came after the header block. node's HTTP client cannot say: it reads no body after HEAD, and the
 * bytes of one fail its parser later or never, so a body the server sends by mistake goes unseen.
 */
export function rawHead(host: string, port: number, path: string, headers: Record<string, string | number>, timeoutMs: number): Promise<HeadAnswer> {
  const lines = [`HEAD ${path} HTTP/1.1`, `host: ${host}:${port}`, 'connection: close'];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  // what node's client refuses to send, this one refuses too: the fuzzer counts both alike
  if (lines.some((l) => /[\r\n]/.test(l))) return Promise.resolve({ error: 'the client refused to send it: CR or LF in the request line or a header' });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host, port }, () => socket.end(`${lines.join('\r\n')}\r\n\r\n`));
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', (err) => resolve({ error: err.message }));
    socket.on('close', () => {
      const raw = Buffer.concat(chunks);
      const end = raw.indexOf('\r\n\r\n');
      const status = /^HTTP\/1\.[01] (\d{3}) /.exec(raw.subarray(0, Math.max(0, end)).toString('latin1'));
      if (end < 0 || !status) resolve({ error: `no answer${raw.length > 0 ? `: ${raw.subarray(0, 80).toString('latin1')}` : ''}` });
      else resolve({ status: Number(status[1]), text: '', headBody: raw.length > end + 4 });
    });
  });
}
