// Acceptance windows for manifests, in the manner of Dolev and Strong's authenticated broadcast.
//
// Relaying every manifest on receipt is not enough for honest coordinators to decide on the same
// manifests: one that reaches an honest coordinator just before it stops accepting is relayed,
// but the relay reaches the others just after they stopped. So a manifest travels with the
// signatures of the members that accepted and passed it on, and each signature buys it one more
// delivery bound Δ: with r valid relay signatures it is accepted until D + (r + 1)·Δ, where D is
// the round's manifest deadline (by which honest coordinators have signed theirs). An honest
// coordinator that accepts one adds its signature and passes it on at once, so the others
// receive it within Δ, inside their window for r + 1. A chain of f + 1 signers holds an honest
// one, who passed it on in time already; so deciding at D + (f + 1)·Δ, with f the most dishonest
// members tolerated (fewer than half), every honest coordinator holds the same manifests — unless
// a signer signed two, which proves its equivocation. Pure: the round driver keeps the clock.
import type { KeyObject } from 'node:crypto';
import { signBytes, verifyBytes, type Identity } from '../federation/identity.js';
import { Limits } from '../federation/limits.js';

const DOMAIN = Buffer.from('concord.v1.relay\0');

export interface RelaySignature {
  /** The relayer's raw public key (32 bytes). */
  relayer: Uint8Array;
  signature: Uint8Array;
}

/** What a relayer signs: the run, the round and the manifest statement's hash. */
export function relaySigningBytes(runId: string, round: bigint, statementHash: Uint8Array): Buffer {
  const run = Buffer.from(runId, 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(run.length);
  const roundBytes = Buffer.alloc(8);
  roundBytes.writeBigUInt64BE(round);
  return Buffer.concat([DOMAIN, length, run, roundBytes, statementHash]);
}

export function signRelay(identity: Identity, runId: string, round: bigint, statementHash: Uint8Array): RelaySignature {
  return { relayer: identity.publicKey, signature: signBytes(identity, relaySigningBytes(runId, round, statementHash)) };
}

/**
 * The relay signatures that count: by distinct members other than the manifest's signer, each
 * valid. Others are dropped, never held against the signer (a relay's fault is not its own).
 */
export function validRelays(relays: readonly RelaySignature[], context: {
  runId: string; round: bigint; statementHash: Uint8Array; signer: Uint8Array; keyFor: (key: Uint8Array) => KeyObject | undefined;
}): RelaySignature[] {
  const message = relaySigningBytes(context.runId, context.round, context.statementHash);
  const seen = new Set<string>([Buffer.from(context.signer).toString('hex')]);
  const valid: RelaySignature[] = [];
  for (const relay of relays.slice(0, Limits.relaysPerManifest)) {
    if (relay.relayer.length !== Limits.publicKeyBytes) continue;
    const id = Buffer.from(relay.relayer).toString('hex');
    if (seen.has(id)) continue;
    const key = context.keyFor(relay.relayer);
    if (key === undefined || !verifyBytes(key, message, relay.signature)) continue;
    seen.add(id);
    valid.push(relay);
  }
  return valid;
}

/** The most dishonest members among `voters` the agreement tolerates: fewer than half. */
export function faultsTolerated(voters: number): number {
  return Math.max(0, Math.ceil(voters / 2) - 1);
}

export interface Windows {
  /** Unix ms by which honest coordinators have signed their manifests (training deadline + 2 × grace). */
  manifestDeadlineMs: number;
  /** Δ, the delivery bound between honest coordinators, ms. */
  deliveryBoundMs: number;
  /** Members whose manifests count in the round. */
  voters: number;
}

/** Until when (Unix ms) a manifest carrying `relays` valid relay signatures is accepted. */
export function acceptedUntil(windows: Omit<Windows, 'voters'>, relays: number): number {
  return windows.manifestDeadlineMs + (relays + 1) * windows.deliveryBoundMs;
}

/**
 * When a coordinator that has not heard from every voter decides: once a chain of f + 1 signers
 * (the signer and f relayers) has had its window. Nothing is accepted after it.
 */
export function decisionTime(windows: Windows): number {
  return acceptedUntil(windows, faultsTolerated(windows.voters));
}
