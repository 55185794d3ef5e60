import type { KeyObject } from 'node:crypto';
import { encodePublicKey, peerIdOf, publicKeyObject } from './identity.js';

/** One allowed remote participant of a run (later: one `Peer` resource). */
export interface PeerEntry {
  /** A name for logs, e.g. the Peer resource's name. */
  readonly name: string;
  readonly publicKey: Buffer;
  readonly peerId: string;
  readonly key: KeyObject;
}

/**
 * The allow-list of a run: only keys listed here may handshake or sign messages. Holds the
 * parsed KeyObjects so verification does not re-import a key per message.
 */
export class PeerDirectory {
  private readonly byKey = new Map<string, PeerEntry>();

  constructor(peers: Iterable<{ name: string; publicKey: Uint8Array }> = []) {
    this.replace(peers);
  }

  /** Replaces the whole list (e.g. after the Peer resources changed). */
  replace(peers: Iterable<{ name: string; publicKey: Uint8Array }>): void {
    this.byKey.clear();
    for (const peer of peers) {
      const publicKey = Buffer.from(peer.publicKey);
      const entry: PeerEntry = { name: peer.name, publicKey, peerId: peerIdOf(publicKey), key: publicKeyObject(publicKey) };
      const id = encodePublicKey(publicKey);
      if (this.byKey.has(id)) throw new Error(`peer "${peer.name}" repeats the public key of "${this.byKey.get(id)!.name}"`);
      this.byKey.set(id, entry);
    }
  }

  get(publicKey: Uint8Array): PeerEntry | undefined {
    return this.byKey.get(encodePublicKey(publicKey));
  }

  has(publicKey: Uint8Array): boolean {
    return this.byKey.has(encodePublicKey(publicKey));
  }

  /** The verification key of an allowed signer, for openEnvelope's `keyFor`. */
  readonly keyFor = (signer: Uint8Array): KeyObject | undefined => this.get(signer)?.key;

  list(): PeerEntry[] {
    return [...this.byKey.values()];
  }
}
