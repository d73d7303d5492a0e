import WebSocket from 'ws';

/** An upgrade's HTTP refusal: its status, Retry-After and JSON body. */
export interface Refusal {
  status: number;
  retryAfter: string | undefined;
  // the refusal's JSON as sent: tests read its fields
  body: any;
}

/** Opens a WebSocket (from `localAddress`, a loopback address, if given) and resolves with the HTTP refusal, or 'open' (then closes it). */
export function upgradeAnswer(url: string, headers: Record<string, string>, localAddress?: string): Promise<Refusal | 'open'> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers, ...(localAddress ? { localAddress } : {}) });
    ws.on('open', () => {
      ws.close();
      resolve('open');
    });
    ws.on('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string | undefined, body: JSON.parse(text) as unknown }));
    });
    ws.on('error', (err) => {
      if (!String(err.message).includes('Unexpected server response')) reject(err);
    });
  });
}
