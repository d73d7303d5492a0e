import { fileURLToPath } from 'node:url';

/** The repository root: the working directory of every process the harness starts. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
