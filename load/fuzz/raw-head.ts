import { connect } from 'node:net';

/** ms to wait for stray body bytes once an answer's header block is in */
const HEAD_GRACE_MS = 100;

export type HeadAnswer = { status: number; text: ''; headBody: boolean } | { error: string };

/**
 * A HEAD request on a raw socket, read until the server closes it or for HEAD_GRACE_MS after the
 * answer's header block: the status, and whether any byte came after that block. node's HTTP client cannot say: it reads no body after HEAD, and the
 * bytes of one fail its parser later or never, so a body the server sends by mistake goes unseen.
 */
export function rawHead(host: string, port: number, path: string, headers: Record<string, string | number>, timeoutMs: number): Promise<HeadAnswer> {
  const lines = [`HEAD ${path} HTTP/1.1`, `host: ${host}:${port}`, 'connection: close'];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  // what node's client refuses to send, this one refuses too: the fuzzer counts both alike
  if (lines.some((l) => /[\r\n]/.test(l))) return Promise.resolve({ error: 'the client refused to send it: CR or LF in the request line or a header' });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    // written, not ended (as node's client sends a request): with a FIN after the request, a fuzz
    // run saw HEAD /v1/admin/audit go unanswered twice, though a replay and 80 tries alone were answered
    const socket = connect({ host, port }, () => socket.write(`${lines.join('\r\n')}\r\n\r\n`));
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    let grace: NodeJS.Timeout | undefined;
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      // the answer is in: a body sent by mistake comes with it or just after; then no need to wait
      // for the server to close (a request header may have asked it to keep the connection)
      if (grace === undefined && 'status' in parseHeadAnswer(Buffer.concat(chunks))) {
        grace = setTimeout(() => {
          resolve(parseHeadAnswer(Buffer.concat(chunks)));
          socket.destroy();
        }, HEAD_GRACE_MS);
      }
    });
    socket.on('error', (err) => resolve({ error: err.message }));
    socket.on('close', () => {
      clearTimeout(grace);
      resolve(parseHeadAnswer(Buffer.concat(chunks)));
    });
  });
}

/** The final answer's status and whether bytes follow its header block; interim 1xx answers are skipped. */
export function parseHeadAnswer(raw: Buffer): HeadAnswer {
  let at = 0;
  for (;;) {
    const end = raw.indexOf('\r\n\r\n', at);
    const status = /^HTTP\/1\.[01] (\d{3})[ \r]/.exec(raw.subarray(at, Math.max(at, end)).toString('latin1'));
    if (end < 0 || !status) return { error: `no answer${raw.length > at ? `: ${raw.subarray(at, at + 80).toString('latin1')}` : ''}` };
    at = end + 4;
    const code = Number(status[1]);
    // 100 Continue (the request said `expect: 100-continue`) comes before the answer, without a body
    if (code >= 100 && code < 200) continue;
    return { status: code, text: '', headBody: raw.length > at };
  }
}
