import { ConfigError, loadConfig } from '../../src/config/config.js';

/** The ConfigError a start with `env` fails with; throws when the configuration is accepted. */
export function refusal(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('the configuration was accepted');
}
