/** A provisioned hub. */
export interface HubRecord {
  hubId: string;
  homeId: string;
  model: string | undefined;
  /** shared secret of the handshake signature */
  secret: string;
  enabled: boolean;
  /** ms since the Unix epoch */
  createdAt: number;
}

/**
 * Provisioning of hubs: which hubs exist, their home and their handshake secret.
 *
 * - `create` fails with `already_exists` when the hub id is taken; it never overwrites.
 * - `get` answers null for unknown hubs; reads see every create/update that resolved before.
 * - Secrets are returned to the provisioning caller once and to the handshake check; nothing
 *   else should expose them.
 */
export interface HubRegistry {
  create(record: HubRecord): Promise<void>;
  get(hubId: string): Promise<HubRecord | null>;
  setEnabled(hubId: string, enabled: boolean): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * Nonces of hub handshakes seen recently, to refuse replays.
 * `claim` answers true the first time a key is claimed within `ttlMs`, false on every repeat;
 * after `ttlMs` the key is forgotten (the timestamp check refuses anything that old anyway).
 */
export interface NonceStore {
  claim(key: string, ttlMs: number): Promise<boolean>;
  close(): Promise<void>;
}
