import { createHash, randomBytes, type KeyObject } from 'node:crypto';
import { signBytes, verifyBytes, type Identity } from './identity.js';
import { Limits } from './limits.js';

/**
 * The mutual challenge–response handshake, as pure functions. Both sides sign one transcript
 * that binds the run and its dataset, both public keys and both nonces; each signature is prefixed with the
 * signer's role so a server signature can never be replayed as a client's or the other way round.
 *
 *   client → server  Hello  {run, dataset hash, clientKey, clientNonce}
 *   server → client         {serverKey, serverNonce, sign("server", T)}
 *   client → server  Finish {serverNonce, sign("client", T)}
 *   server → client         {sessionId = T[0..16)}
 */
export type HandshakeRole = 'client' | 'server';

const DOMAIN = Buffer.from('concord.v1.handshake\0');

export function handshakeTranscript(parts: {
  runId: string;
  clientKey: Uint8Array;
  serverKey: Uint8Array;
  clientNonce: Uint8Array;
  serverNonce: Uint8Array;
  /** The run's dataset hash (32 bytes), or empty for the bundled corpus (the default). */
  datasetHash?: Uint8Array;
}): Buffer {
  const run = Buffer.from(parts.runId, 'utf8');
  const runLength = Buffer.alloc(4);
  runLength.writeUInt32BE(run.length);
  const dataset = parts.datasetHash ?? new Uint8Array(0);
  // Keys and nonces have fixed lengths (checked by the callers), so plain concatenation is unambiguous.
  return createHash('sha256')
    .update(DOMAIN).update(runLength).update(run)
    .update(parts.clientKey).update(parts.serverKey)
    .update(parts.clientNonce).update(parts.serverNonce)
    .update(Uint8Array.of(dataset.length)).update(dataset)
    .digest();
}

function roleBytes(role: HandshakeRole, transcript: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`${role}\0`), transcript]);
}

export function signTranscript(identity: Identity, role: HandshakeRole, transcript: Uint8Array): Buffer {
  return signBytes(identity, roleBytes(role, transcript));
}

export function verifyTranscript(key: KeyObject, role: HandshakeRole, transcript: Uint8Array, signature: Uint8Array): boolean {
  return verifyBytes(key, roleBytes(role, transcript), signature);
}

export function sessionIdOf(transcript: Uint8Array): Buffer {
  return Buffer.from(transcript.subarray(0, Limits.sessionIdBytes));
}

export function freshNonce(): Buffer {
  return randomBytes(Limits.nonceBytes);
}
