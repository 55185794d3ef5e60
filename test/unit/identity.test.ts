import { describe, expect, it } from '@jest/globals';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  encodePublicKey, generateIdentity, identityFromPem, identityToPem, loadIdentity, parsePublicKey, peerIdOf,
  publicKeyObject, saveIdentity, signBytes, verifyBytes,
} from '../../operator/src/federation/identity.js';

describe('identity', () => {
  it('round-trips a key through PEM and keeps the public key and peer id', () => {
    const identity = generateIdentity();
    const again = identityFromPem(identityToPem(identity));
    expect(again.publicKey.equals(identity.publicKey)).toBe(true);
    expect(again.peerId).toBe(identity.peerId);
    expect(identity.publicKey).toHaveLength(32);
  });

  it('derives a 32-hex-character peer id that differs between keys and is stable for one key', () => {
    const a = generateIdentity();
    const b = generateIdentity();
    expect(a.peerId).toMatch(/^[0-9a-f]{32}$/);
    expect(a.peerId).not.toBe(b.peerId);
    expect(peerIdOf(a.publicKey)).toBe(a.peerId);
  });

  it('saves the key readable by the owner only and refuses to overwrite it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'concord-id-'));
    const path = join(dir, 'identity.pem');
    const identity = generateIdentity();
    await saveIdentity(path, identity);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await loadIdentity(path)).peerId).toBe(identity.peerId);
    await expect(saveIdentity(path, generateIdentity())).rejects.toThrow(/EEXIST/);
    expect((await loadIdentity(path)).peerId).toBe(identity.peerId);
    expect(await readFile(path, 'utf8')).toContain('BEGIN PRIVATE KEY');
  });

  it('refuses a key that is not Ed25519, naming the type', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    expect(() => identityFromPem(privateKey.export({ format: 'pem', type: 'pkcs8' }).toString())).toThrow(/must be Ed25519, got ec/);
    expect(() => identityFromPem('not a key')).toThrow(/not a PEM private key/);
  });

  it('parses public keys as base64 or SPKI PEM and explains what it expects otherwise', () => {
    const identity = generateIdentity();
    expect(parsePublicKey(encodePublicKey(identity.publicKey)).equals(identity.publicKey)).toBe(true);
    const pem = publicKeyObject(identity.publicKey).export({ format: 'pem', type: 'spki' }).toString();
    expect(parsePublicKey(pem).equals(identity.publicKey)).toBe(true);
    expect(() => parsePublicKey('AAAA')).toThrow(/base64 of 32 bytes/);
    expect(() => publicKeyObject(Buffer.alloc(31))).toThrow(/32 bytes, got 31/);
  });

  it('verifies its own signatures and nothing else', () => {
    const identity = generateIdentity();
    const other = generateIdentity();
    const message = Buffer.from('round 7');
    const signature = signBytes(identity, message);
    const key = publicKeyObject(identity.publicKey);
    expect(verifyBytes(key, message, signature)).toBe(true);
    expect(verifyBytes(key, Buffer.from('round 8'), signature)).toBe(false);
    expect(verifyBytes(publicKeyObject(other.publicKey), message, signature)).toBe(false);
    expect(verifyBytes(key, message, signature.subarray(0, 63))).toBe(false);
  });
});
