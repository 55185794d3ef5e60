// Hooks through which a test or the local demo makes one coordinator dishonest. The honest
// coordinator never sets them; scripts/attacks.ts holds the attacks that use them. Keeping the
// hooks narrow means every attack goes through the same transport, signatures and checks as an
// honest cluster, so the suite tests what a real attacker could do and nothing more.
import type { Envelope } from '../../../proto/gen/concord/v1/envelope_pb.js';
import type { MemoryBlobStore } from '../federation/blob-store.js';
import type { Identity } from '../federation/identity.js';
import type { PeerEntry } from '../federation/peers.js';
import type { AcceptedContribution } from '../rounds/agreement.js';
import type { Contribution } from './contribute.js';
import type { RoundBook } from './round-book.js';

export interface MisbehaviourContext {
  identity: Identity;
  runId: string;
  round: bigint;
  /** This round's base (model hash) and the previous round's. */
  baseHash: Buffer;
  previousBaseHash: Buffer | undefined;
  /** Parameters of the model. */
  modelLength: number;
  /** The remote peers. */
  peers: readonly PeerEntry[];
  /** Payloads this coordinator serves (FetchContribution), for an attack's own payloads. */
  payloads: MemoryBlobStore;
  /** What this coordinator holds of the round so far (others' headers and payloads). */
  book: RoundBook;
  /** The update the federation applied last round (the aggregate, as every coordinator computed it). */
  previousUpdate: Float32Array | undefined;
  /** Statements this coordinator signed in earlier rounds (for a replay). */
  history: readonly Envelope[];
  /** Resolves once another peer's payload has arrived (for a copier), or after `timeoutMs`. */
  waitForOthers(timeoutMs: number): Promise<void>;
}

export interface Misbehaviour {
  /** The assignment the cluster trains on: assign()'s peer id and peer list (default its own). */
  trainingData?(ctx: { ownPeerId: string; peers: readonly string[]; round: bigint }): { peerId: string; peers: string[] };
  /** Alters the cluster's pseudo-gradient before it is compressed and signed. */
  alterDelta?(delta: Float32Array, ctx: { round: bigint }): void;
  /**
   * Decides what is announced to whom: per peer name, the statements to send (undefined = the
   * honest behaviour, every peer gets the cluster's own statement; an empty map = silence).
   * It may sign statements and put payloads into `ctx.payloads`.
   */
  announce?(own: Contribution | undefined, ctx: MisbehaviourContext): Promise<Map<string, Envelope[]> | undefined>;
  /** Alters the manifest's entries before signing; undefined = send no manifest at all. */
  manifest?(entries: AcceptedContribution[], ctx: MisbehaviourContext): AcceptedContribution[] | undefined;
}
