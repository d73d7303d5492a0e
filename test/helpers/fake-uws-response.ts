/** The calls a route handler makes on a uWS HttpResponse, recorded: for tests that call handlers directly. */
export interface FakeAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** A response whose request body is `body` (one chunk); `onEnd` gets what the handler answered. */
export function fakeUwsResponse(body: string, onEnd: (answer: FakeAnswer) => void) {
  const answer: FakeAnswer = { status: 0, headers: {}, body: '' };
  return {
    onAborted() {},
    getRemoteAddressAsText: () => new TextEncoder().encode('127.0.0.1').buffer,
    onData(read: (chunk: ArrayBuffer, last: boolean) => void) {
      read(new TextEncoder().encode(body).buffer as ArrayBuffer, true);
    },
    cork(write: () => void) {
      write();
    },
    writeStatus(line: string) {
      answer.status = Number.parseInt(line, 10);
      return this;
    },
    writeHeader(name: string, value: string) {
      answer.headers[name] = value;
      return this;
    },
    end(payload = '') {
      answer.body = payload;
      onEnd(answer);
    },
  };
}
