import http from 'node:http';

/**
 * One HTTP request per TCP connection (no keep-alive): a failure then belongs to exactly one
 * server process, the one this request connected to, and never to a pooled connection that a
 * restarted node closed earlier.
 */

export interface HttpAnswer {
  status: number;
  /** the parsed JSON body, or the raw text when it is not JSON */
  body: unknown;
}

/**
 * No HTTP answer: `code` is the socket error (`ECONNRESET`, `ECONNREFUSED`, ...) or `timeout`
 * when nothing came back within the request's deadline.
 */
export class NoAnswerError extends Error {
  override name = 'NoAnswerError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export function request(base: string, method: string, path: string, token: string, body: unknown, timeoutMs: number): Promise<HttpAnswer> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (err: NoAnswerError | null, answer?: HttpAnswer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(answer!);
    };
    const headers: Record<string, string> = { authorization: `Bearer ${token}`, connection: 'close' };
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    const req = http.request(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err: NodeJS.ErrnoException) => finish(new NoAnswerError(err.code ?? 'response_error', err.message)));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // not JSON: keep the text; the caller decides whether that is an answer
        }
        finish(null, { status: res.statusCode ?? 0, body: parsed });
      });
    });
    const timer = setTimeout(() => {
      finish(new NoAnswerError('timeout', `${method} ${url.href}: no answer within ${timeoutMs} ms`));
      req.destroy();
    }, timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => finish(new NoAnswerError(err.code ?? 'request_error', `${method} ${url.href}: ${err.message}`)));
    req.end(payload);
  });
}
