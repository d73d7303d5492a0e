/**
 * The app client of hubtier, for browsers and Node: one module with no dependency besides a
 * WebSocket (the browser's, or the `ws` package in Node 20). See docs/client.md.
 */
export { HubtierClient, CONNECT_TIMEOUT_CLOSE, KEEPALIVE_CLOSE, SUBSCRIBE_TIMEOUT_CLOSE, type ClientOptions, type CommandBody, type CommandOptions, type ConnectionState } from './client.js';
export { ClientError } from './errors.js';
export { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
export type { Subscription, SubscribeOptions, SubscriptionHandlers, ReloadInfo } from './subscriptions.js';
export type { WebSocketConstructor, WebSocketLike } from './socket.js';
export type { AppEventMessage, HubEvent, Position, RecoveryFailure, RemovedReason, SubResult } from '../../proto/app.js';
export { ErrorCodes, CloseCode, type ErrorCode } from '../../proto/errors.js';
