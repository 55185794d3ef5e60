import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { Limits } from './limits.js';

/**
 * A cluster's identity in one run: an Ed25519 key pair. The public key is what owners exchange
 * out of band (base64 of the 32 raw bytes, like WireGuard); the peer id is derived from it.
 */
export interface Identity {
  /** Raw Ed25519 public key, 32 bytes. */
  readonly publicKey: Buffer;
  readonly privateKey: KeyObject;
  readonly peerId: string;
}

export function generateIdentity(): Identity {
  const { privateKey } = generateKeyPairSync('ed25519');
  return identityFromPrivateKey(privateKey);
}

export function identityFromPrivateKey(privateKey: KeyObject): Identity {
  if (privateKey.asymmetricKeyType !== 'ed25519') {
    throw new Error(`identity key must be Ed25519, got ${privateKey.asymmetricKeyType ?? privateKey.type}`);
  }
  const publicKey = rawPublicKey(createPublicKey(privateKey));
  return { publicKey, privateKey, peerId: peerIdOf(publicKey) };
}

/** PKCS#8 PEM of the private key: the format of the identity Secret and of key files. */
export function identityToPem(identity: Identity): string {
  return identity.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

export function identityFromPem(pem: string): Identity {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch (error) {
    throw new Error(`identity key is not a PEM private key: ${(error as Error).message}`);
  }
  return identityFromPrivateKey(key);
}

/** Writes the key as PEM, readable by the owner only; refuses to overwrite an existing file. */
export async function saveIdentity(path: string, identity: Identity): Promise<void> {
  await writeFile(path, identityToPem(identity), { mode: 0o600, flag: 'wx' });
}

export async function loadIdentity(path: string): Promise<Identity> {
  return identityFromPem(await readFile(path, 'utf8'));
}

/**
 * The peer id: hex of the first 16 bytes of SHA-256 of the raw public key. Short enough for
 * labels and logs; finding a key for a given id would take 2^128 work.
 */
export function peerIdOf(publicKey: Uint8Array): string {
  return createHash('sha256').update(publicKey).digest().subarray(0, 16).toString('hex');
}

/** The text form of a public key that owners exchange: base64 of the 32 raw bytes. */
export function encodePublicKey(publicKey: Uint8Array): string {
  return Buffer.from(publicKey).toString('base64');
}

/** Parses a public key given as base64 of 32 raw bytes, or as an SPKI PEM. */
export function parsePublicKey(text: string): Buffer {
  const trimmed = text.trim();
  if (trimmed.startsWith('-----BEGIN')) {
    try {
      return rawPublicKey(createPublicKey({ key: trimmed, format: 'pem' }));
    } catch (error) {
      throw new Error(`public key PEM does not parse: ${(error as Error).message}`);
    }
  }
  if (!/^[A-Za-z0-9+/]{43}=$/.test(trimmed)) {
    throw new Error('public key must be base64 of 32 bytes (44 characters ending in "=") or an SPKI PEM');
  }
  return Buffer.from(trimmed, 'base64');
}

function rawPublicKey(key: KeyObject): Buffer {
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`public key must be Ed25519, got ${key.asymmetricKeyType}`);
  const jwk = key.export({ format: 'jwk' });
  return Buffer.from(jwk.x as string, 'base64url');
}

/** A KeyObject for a raw 32-byte public key, for verification. Throws on a wrong length. */
export function publicKeyObject(publicKey: Uint8Array): KeyObject {
  if (publicKey.length !== Limits.publicKeyBytes) throw new Error(`public key must be ${Limits.publicKeyBytes} bytes, got ${publicKey.length}`);
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' });
}

export function signBytes(identity: Identity, message: Uint8Array): Buffer {
  return sign(null, message, identity.privateKey);
}

/** True iff `signature` is a valid Ed25519 signature of `message` by `key`. Never throws. */
export function verifyBytes(key: KeyObject, message: Uint8Array, signature: Uint8Array): boolean {
  if (signature.length !== Limits.signatureBytes) return false;
  try {
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
}
