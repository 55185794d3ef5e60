// The attacks a dishonest cluster can make, for `npm start --attack NAME` and the adversarial
// suite (test/adversarial/). Each is a Misbehaviour (operator/src/coordinator/misbehaviour.ts):
// the attacker runs the real coordinator, signs with its real key and talks over the real
// transport — only what it trains, signs, announces or votes differs. Every attack is careful:
// it has read the code and makes no mistake an honest checker could catch by luck (its manifest
// lists exactly one header of its own, the one it announced; it never signs two headers unless
// equivocation is the attack). Each attacker also votes for its own contribution with a full
// score, which alone must not get it applied. ATTACK_INFO says what each exploits and what
// stops it; docs/rounds.md has the table.
import { randomBytes } from 'node:crypto';
import { fromBinary } from '@bufbuild/protobuf';
import type { Envelope } from '../proto/gen/concord/v1/envelope_pb.js';
import { ContributionHeaderSchema } from '../proto/gen/concord/v1/federation_pb.js';
import { encodeChunkMessage } from '../proto/grpc/encoded.js';
import type { Contribution } from '../operator/src/coordinator/contribute.js';
import type { Misbehaviour, MisbehaviourContext } from '../operator/src/coordinator/misbehaviour.js';
import { Blob, sha256 } from '../operator/src/federation/blob-store.js';
import { sealEnvelope } from '../operator/src/federation/envelope.js';
import { PPM } from '../operator/src/rounds/agreement.js';
import { decodePayload, densify, SparseLoCoEncoder } from '../trainer/src/codec/index.js';
import { maxPayloadBytes, readHeader, riceParameter } from '../trainer/src/codec/format.js';
import { seededRandom } from '../trainer/src/random.js';

export const ATTACKS = [
  'sign-flip', 'scale', 'noise', 'free-ride', 'copy', 'resign', 'replay', 'equivocate', 'stale-base', 'malformed', 'oversized', 'silence', 'other-data',
  'inflate-tokens', 'replay-aggregate', 'trickle', 'bias',
] as const;
export type AttackName = (typeof ATTACKS)[number];

export interface AttackInfo {
  /** What the attack exploits, or tries to. */
  exploits: string;
  /** What stops it. */
  stoppedBy: string;
  /**
   * `rejected`: none of its contributions is applied, for one of `reasons`; `bounded`: its work
   * may be applied, but its share of every round's update stays within the run's bound.
   */
  outcome: 'rejected' | 'bounded';
  /** The rejection reasons the honest clusters may give (at least one of them, when rejected). */
  reasons: readonly string[];
}

export const ATTACK_INFO: Readonly<Record<AttackName, AttackInfo>> = {
  'sign-flip': { exploits: 'an update against the direction of training', stoppedBy: 'Gauntlet score: it makes its own data worse', outcome: 'rejected', reasons: ['NoImprovement'] },
  scale: { exploits: 'an update 100x its real size', stoppedBy: 'norm outlier check (10x the median) and clipping to the median norm', outcome: 'rejected', reasons: ['NormOutlier'] },
  noise: { exploits: 'noise of a plausible norm instead of work', stoppedBy: 'Gauntlet score once the model has trained a round: its step adds loss, or removes a small fraction of what the round\'s other steps remove (relative work); from a fresh initialisation a random direction really lowers the loss and may be applied, within the share cap', outcome: 'bounded', reasons: ['NoImprovement'] },
  'free-ride': { exploits: 'an empty update, to be paid for nothing', stoppedBy: 'Gauntlet score: no improvement at all', outcome: 'rejected', reasons: ['NoImprovement'] },
  copy: { exploits: 'another peer\'s update, re-encoded with noise (a new payload hash)', stoppedBy: 'near-copy check: index overlap above 0.5 with an earlier commit', outcome: 'rejected', reasons: ['NearCopy'] },
  resign: { exploits: 'another peer\'s payload, byte for byte, signed as its own', stoppedBy: 'duplicate check: the same payload hash as an earlier commit', outcome: 'rejected', reasons: ['Duplicate'] },
  replay: { exploits: 'its own header of the previous round, sent again', stoppedBy: 'the round in the signed header', outcome: 'rejected', reasons: ['WrongRound'] },
  equivocate: { exploits: 'two different headers for one round, one to the first peer and one to the rest', stoppedBy: 'headers relayed on receipt and carried in manifests: both meet, the signer is banned with the two signatures', outcome: 'rejected', reasons: ['Equivocation', 'Banned'] },
  'stale-base': { exploits: 'a contribution computed from last round\'s model', stoppedBy: 'the base hash in the signed header', outcome: 'rejected', reasons: ['StaleBase'] },
  malformed: { exploits: 'bytes that are no payload, under a correctly signed hash', stoppedBy: 'decoding the payload before anything else', outcome: 'rejected', reasons: ['Malformed'] },
  oversized: { exploits: 'a header that commits to far more bytes than allowed, to make peers allocate', stoppedBy: 'the size limit, checked on the signed header before any transfer', outcome: 'rejected', reasons: ['TooLarge'] },
  silence: { exploits: 'saying nothing, to stall the round', stoppedBy: 'the round\'s deadlines: past the training window, a silent peer holds the round at most two grace periods and f + 1 delivery bounds (payloads, then manifests)', outcome: 'rejected', reasons: ['Unavailable'] },
  'other-data': { exploits: 'real work on data other than its assignment', stoppedBy: 'its share of each round (maxShare) and its token claim (relativeTokenCap); it is real work on real text, and whether an update fits its assignment is too weak a signal to judge it by (docs/rounds.md, "Score")', outcome: 'bounded', reasons: [] },
  'inflate-tokens': { exploits: 'honest work under a claim of 1000x the tokens it trained on, to outweigh everyone', stoppedBy: 'claims capped at 2x the round\'s lower median claim (and the spec\'s maximum); no contribution above maxShare of the update', outcome: 'bounded', reasons: [] },
  'replay-aggregate': { exploits: 'last round\'s agreed update, re-encoded and signed as fresh work', stoppedBy: 'the share cap and clipping to the median norm; the Gauntlet score once the replayed step no longer helps', outcome: 'bounded', reasons: ['NoImprovement'] },
  bias: { exploits: 'honest work plus a push along one fixed direction, half its update\'s norm, every round: small enough to pass every per-round check', stoppedBy: 'bounded, not stopped: its share of each round (maxShare) and clipping to the median norm bound the drift (docs/rounds.md, "Bounded drift")', outcome: 'bounded', reasons: [] },
  trickle: { exploits: 'a header claiming the largest payload the codec allows, streamed at 256 bytes a second, to hold every round to its grace period', stoppedBy: 'a claimed size above the codec\'s bound is refused on sight; a signer\'s own stream slower than the run\'s minimum rate (or ending short) is cut and charged', outcome: 'rejected', reasons: ['TooSlow'] },
};

/** The rows of docs/rounds.md's attack table (a test keeps the document in step). */
export function attackTableRows(): string[] {
  return ATTACKS.map((name) => {
    const info = ATTACK_INFO[name];
    const outcome = info.outcome === 'bounded' ? 'applied at most within the bound' : `rejected: ${info.reasons.join(', ')}`;
    return `| \`${name}\` | ${info.exploits} | ${info.stoppedBy} (${outcome}) |`;
  });
}

export function isAttack(name: string): name is AttackName {
  return (ATTACKS as readonly string[]).includes(name);
}

export function attack(name: AttackName): Misbehaviour {
  /** The payload hash this attacker last committed to, for its self-vote. */
  let committed: { payloadHash: Buffer; header: Envelope } | undefined;
  // Its vote: everyone else as its validation judged them, and itself, with a full score, for
  // exactly the header it announced (never its honest header beside it: two headers of one
  // signer in a manifest would prove equivocation). A payload it claims that another peer also
  // committed (`resign`) it lists as its own only: a manifest names each payload once.
  const selfVote: NonNullable<Misbehaviour['manifest']> = (entries, ctx) => {
    const others = entries.filter((e) => !Buffer.from(e.contributor).equals(ctx.identity.publicKey));
    if (committed === undefined) return others;
    const claimed = committed.payloadHash;
    return [...others.filter((e) => !Buffer.from(e.payloadHash).equals(claimed)), { payloadHash: claimed, contributor: ctx.identity.publicKey, scorePpm: PPM, header: committed.header }];
  };
  /** Signs a header for the round and serves `payload`; the same for every peer. */
  const sign = (ctx: MisbehaviourContext, fields: { payload: Uint8Array; tokens?: bigint; baseHash?: Uint8Array; payloadBytes?: bigint; round?: bigint }) => {
    const payloadHash = ctx.payloads.put(fields.payload);
    const round = fields.round ?? ctx.round;
    const header = sealEnvelope(ctx.identity, {
      runId: ctx.runId, round, schema: ContributionHeaderSchema,
      body: {
        runId: ctx.runId, round, baseHash: fields.baseHash ?? ctx.baseHash, tokens: fields.tokens ?? 1000n, payloadHash,
        payloadBytes: fields.payloadBytes ?? BigInt(fields.payload.length),
      },
    });
    committed = { payloadHash, header };
    return header;
  };
  const toAll = (ctx: MisbehaviourContext, statements: Envelope[]) => new Map(ctx.peers.map((p) => [p.name, statements]));
  const honestVote = (own: Contribution | undefined) => {
    committed = own === undefined ? undefined : { payloadHash: own.payloadHash, header: own.statement };
  };

  switch (name) {
    case 'sign-flip':
      return { alterDelta: (delta) => { for (let i = 0; i < delta.length; i++) delta[i] = -delta[i]!; }, announce: async (own) => { honestVote(own); return undefined; }, manifest: selfVote };
    case 'scale':
      return { alterDelta: (delta) => { for (let i = 0; i < delta.length; i++) delta[i] = 100 * delta[i]!; }, announce: async (own) => { honestVote(own); return undefined; }, manifest: selfVote };
    case 'noise':
      return {
        // Gaussian noise with the norm of the real update: plausible in size, useless in content.
        alterDelta: (delta, { round }) => {
          let sum = 0;
          for (const v of delta) sum += v * v;
          const rms = Math.sqrt(sum / delta.length);
          const random = seededRandom(1000 + Number(round));
          for (let i = 0; i < delta.length; i++) delta[i] = rms * gaussian(random);
        },
        announce: async (own) => { honestVote(own); return undefined; }, manifest: selfVote,
      };
    case 'free-ride':
      return { alterDelta: (delta) => delta.fill(0), announce: async (own) => { honestVote(own); return undefined; }, manifest: selfVote };
    case 'other-data':
      // Trains honestly, but on data outside its assignment: the slice of a made-up extra peer.
      return {
        trainingData: ({ peers }) => ({ peerId: 'elsewhere', peers: [...peers, 'elsewhere'] }),
        announce: async (own) => { honestVote(own); return undefined; }, manifest: selfVote,
      };
    case 'resign':
      // Re-signs another peer's payload, byte for byte, as its own.
      return {
        announce: async (_own, ctx) => {
          const victim = await victimOf(ctx);
          return victim === undefined ? new Map() : toAll(ctx, [sign(ctx, { payload: victim.payload!, tokens: victim.signed.header.tokens })]);
        },
        manifest: selfVote,
      };
    case 'copy':
      // Copies another peer's update with a little noise and re-encodes it: a new payload hash.
      return {
        announce: async (_own, ctx) => {
          const victim = await victimOf(ctx);
          if (victim === undefined) return new Map();
          const length = ctx.modelLength;
          const update = decodePayload(victim.payload!, length);
          const dense = densify(update);
          const random = seededRandom(7 + Number(ctx.round));
          let sum = 0;
          for (const v of update.values) sum += v * v;
          const rms = Math.sqrt(sum / Math.max(1, update.values.length));
          for (const index of update.indices) dense[index] = dense[index]! + 0.1 * rms * gaussian(random);
          const params = readHeader(victim.payload!, length);
          const payload = new SparseLoCoEncoder(length, { chunk: params.chunk, k: params.k, bits: params.bits }).encode(dense).slice();
          return toAll(ctx, [sign(ctx, { payload, tokens: victim.signed.header.tokens })]);
        },
        manifest: selfVote,
      };
    case 'replay':
      // Sends its statement of the previous round again (nothing in round 0).
      return {
        announce: async (_own, ctx) => {
          const old = ctx.history.at(-2);
          return toAll(ctx, old === undefined ? [] : [old]);
        },
        manifest: selfVote,
      };
    case 'equivocate':
      // Two different signed headers for one round: one to the first peer, the other to the rest.
      return {
        announce: async (own, ctx) => {
          if (own === undefined) return new Map();
          const second = sign(ctx, { payload: own.payload, tokens: 2n * 1000n + ctx.round });
          honestVote(own);
          return new Map(ctx.peers.map((p, i) => [p.name, [i === 0 ? own.statement : second]]));
        },
        manifest: selfVote,
      };
    case 'stale-base':
      // Claims a contribution computed from the previous round's model.
      return {
        announce: async (own, ctx) => (own === undefined ? new Map() : toAll(ctx, [sign(ctx, { payload: own.payload, baseHash: ctx.previousBaseHash ?? randomBytes(32) })])),
        manifest: selfVote,
      };
    case 'malformed':
      // Bytes that are not a SparseLoCo payload, under a correctly signed hash.
      return {
        announce: async (own, ctx) => (own === undefined ? new Map() : toAll(ctx, [sign(ctx, { payload: randomBytes(own.payload.length) })])),
        manifest: selfVote,
      };
    case 'oversized':
      // A header that commits to far more bytes than a contribution may have.
      return {
        announce: async (own, ctx) => (own === undefined ? new Map() : toAll(ctx, [sign(ctx, { payload: own.payload, payloadBytes: 1n << 40n })])),
        manifest: selfVote,
      };
    case 'silence':
      return { announce: async () => new Map(), manifest: () => undefined };
    case 'bias':
      // Its real update with BIAS_SCALE × its norm taken off along biasDirection(), the same every
      // round: the outer step subtracts the pseudo-gradient, so the model is pushed along it.
      return {
        alterDelta: addBias,
        announce: async (own) => { honestVote(own); return undefined; }, manifest: selfVote,
      };
    case 'inflate-tokens':
      // Honest work, signed with a claim of 1000x the tokens it trained on.
      return {
        announce: async (own, ctx) => {
          if (own === undefined) return new Map();
          const header = own.statement;
          const tokens = 1000n * readTokens(header);
          return toAll(ctx, [sign(ctx, { payload: own.payload, tokens })]);
        },
        manifest: selfVote,
      };
    case 'replay-aggregate':
      // Last round's agreed update, top-k encoded like a contribution and signed as fresh work.
      return {
        announce: async (own, ctx) => {
          if (own === undefined || ctx.previousUpdate === undefined) { honestVote(own); return undefined; }
          const params = readHeader(own.payload, ctx.modelLength);
          const payload = new SparseLoCoEncoder(ctx.modelLength, { chunk: params.chunk, k: params.k, bits: params.bits }).encode(ctx.previousUpdate.slice()).slice();
          return toAll(ctx, [sign(ctx, { payload, tokens: readTokens(own.statement) })]);
        },
        manifest: selfVote,
      };
    case 'trickle':
      // A header that claims the largest payload the codec allows for the model (no more: a
      // larger claim is refused on sight), then streams it at 256 bytes a second.
      return {
        announce: async (own, ctx) => {
          if (own === undefined) return new Map();
          const params = readHeader(own.payload, ctx.modelLength);
          const claimed = maxPayloadBytes(ctx.modelLength, params, riceParameter(params.chunk, params.k));
          const full = Buffer.concat([own.payload, randomBytes(Math.max(0, claimed - own.payload.length))]);
          const header = sign(ctx, { payload: full, tokens: readTokens(own.statement) });
          ctx.payloads.setBlob(sha256(full), new TricklingBlob(full, 64, 250));
          return toAll(ctx, [header]);
        },
        manifest: selfVote,
      };
  }
}

/**
 * Colluders that coordinate: each trains honestly, announces its header — and its partners' — to
 * one chosen honest cluster only, and votes for the coalition's contributions with full scores
 * and for nobody else (score stuffing, and withholding votes from honest work). With `drift`,
 * every member also pushes the model along the same fixed direction (the `bias` attack, by all
 * of them at once: their pushes add up where one attacker's would be diluted). What it exploits:
 * targeted announcements (one honest cluster sees the coalition, the others might not), deciding
 * early, medians over the including votes, and the share of the update a coalition holds
 * together. What stops it: relay on receipt, the common decision deadline, the score median over
 * all members, the share cap and clipping to the median norm.
 */
export function coalition(target: string, options: { drift?: boolean } = {}): { member: () => Misbehaviour } {
  const headers = new Map<string, { payloadHash: Buffer; header: Envelope; contributor: Uint8Array; round: bigint }>();
  return {
    member: () => ({
      ...(options.drift ? { alterDelta: addBias } : {}),
      announce: async (own, ctx) => {
        if (own === undefined) return new Map();
        headers.set(ctx.identity.peerId, { payloadHash: own.payloadHash, header: own.statement, contributor: ctx.identity.publicKey, round: ctx.round });
        const ours = [...headers.values()].filter((h) => h.round === ctx.round).map((h) => h.header);
        return new Map(ctx.peers.map((p) => [p.name, p.name === target ? ours : []]));
      },
      manifest: (_entries, ctx) => [...headers.values()].filter((h) => h.round === ctx.round)
        .map((h) => ({ payloadHash: h.payloadHash, contributor: h.contributor, scorePpm: PPM, header: h.header })),
    }),
  };
}

/** How hard the `bias` attacker pushes: this fraction of its real update's norm, along biasDirection(). */
export const BIAS_SCALE = 0.5;

/** An update with BIAS_SCALE × its norm taken off along biasDirection(), in place. */
function addBias(delta: Float32Array): void {
  let sum = 0;
  for (const v of delta) sum += v * v;
  const push = BIAS_SCALE * Math.sqrt(sum);
  const direction = biasDirection(delta.length);
  for (let i = 0; i < delta.length; i++) delta[i] = delta[i]! - push * direction[i]!;
}

/** The `bias` attacker's fixed direction for a model of `length` parameters: a seeded random unit vector. */
export function biasDirection(length: number): Float32Array {
  if (cachedBias?.length === length) return cachedBias;
  const random = seededRandom(4242);
  const direction = new Float32Array(length);
  let sum = 0;
  for (let i = 0; i < length; i++) {
    direction[i] = gaussian(random);
    sum += direction[i]! * direction[i]!;
  }
  const norm = Math.sqrt(sum);
  for (let i = 0; i < length; i++) direction[i] = direction[i]! / norm;
  cachedBias = direction;
  return direction;
}
let cachedBias: Float32Array | undefined;

/** A blob that streams itself `bytesPerMessage` at a time, one message every `intervalMs` (the trickle). */
class TricklingBlob extends Blob {
  constructor(bytes: Uint8Array, private readonly bytesPerMessage: number, private readonly intervalMs: number) {
    super(bytes, false);
  }

  override async *chunkMessages(_chunkBytes: number, first = 0) {
    for (let at = first * this.bytesPerMessage; at < this.bytes.length; at += this.bytesPerMessage) {
      await new Promise((resolve) => setTimeout(resolve, this.intervalMs));
      yield encodeChunkMessage(at, this.bytes.length, this.bytes.subarray(at, Math.min(this.bytes.length, at + this.bytesPerMessage)));
    }
  }
}

/** The tokens an own (honest) header claims. */
function readTokens(header: Envelope): bigint {
  return fromBinary(ContributionHeaderSchema, header.body).tokens;
}

/** Another peer's checked contribution of the round, once one has arrived (for copiers). */
async function victimOf(ctx: MisbehaviourContext) {
  await ctx.waitForOthers(5_000);
  const ownKey = ctx.identity.publicKey;
  return ctx.book.ready().find((c) => !c.signed.signer.equals(ownKey));
}

function gaussian(random: () => number): number {
  const u = Math.max(random(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}
