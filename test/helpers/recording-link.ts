import { FrameType, type ErrorFrame, type ServerToHubFrame } from '../../proto/frames.js';
import type { HubLink } from '../../src/actors/hub-session.js';
import { decodeServerFrame } from '../../src/protocol/codec.js';

/** A hub session's link that keeps every frame sent to the hub, decoded. */
export class RecordingLink implements HubLink {
  readonly frames: ServerToHubFrame[] = [];
  send(bytes: Uint8Array): boolean {
    this.frames.push(decodeServerFrame(bytes));
    return true;
  }
  close(): void {}
  acks(): number[] {
    return this.frames.flatMap((f) => (f.t === FrameType.ack ? [f.s] : []));
  }
  errors(): ErrorFrame[] {
    return this.frames.filter((f): f is ErrorFrame => f.t === FrameType.error);
  }
}
