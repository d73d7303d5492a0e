/** A throwaway OTLP/HTTP receiver for `--trace on`: it counts the spans posted and keeps nothing. */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SpanSink {
  url: string;
  /** spans received so far */
  spans(): number;
  close(): Promise<void>;
}

export async function startSpanSink(): Promise<SpanSink> {
  let spans = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      // every span of an OTLP JSON body has exactly one "spanId" key
      spans += Buffer.concat(chunks).toString().split('"spanId"').length - 1;
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans: () => spans,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
