/**
 * The chaos tool's HTTP requests are the admin client's one-connection-per-request `request`
 * (load/wire/admin.ts): a failure then belongs to exactly the node process it reached.
 */
export { NoAnswerError, request, type HttpAnswer } from '../wire/admin.js';
