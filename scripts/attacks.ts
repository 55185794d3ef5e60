// The attacks a dishonest cluster can make, for `npm start --attack NAME` and the adversarial
// suite (test/adversarial/). Each is a Misbehaviour (operator/src/coordinator/misbehaviour.ts):
// the attacker runs the real coordinator, signs with its real key and talks over the real
// transport — only what it trains, signs, announces or votes differs. Every attacker also votes
// for its own contribution with a full score (a dishonest manifest), which alone must not get
// it applied.
import { randomBytes } from 'node:crypto';
import type { Envelope } from '../proto/gen/concord/v1/envelope_pb.js';
import { ContributionHeaderSchema } from '../proto/gen/concord/v1/federation_pb.js';
import type { Contribution } from '../operator/src/coordinator/contribute.js';
import type { Misbehaviour, MisbehaviourContext } from '../operator/src/coordinator/misbehaviour.js';
import { sealEnvelope } from '../operator/src/federation/envelope.js';
import { PPM } from '../operator/src/rounds/agreement.js';
import { decodePayload, densify, SparseLoCoEncoder } from '../trainer/src/codec/index.js';
import { readHeader } from '../trainer/src/codec/format.js';
import { seededRandom } from '../trainer/src/random.js';

export const ATTACKS = [
  'sign-flip', 'scale', 'noise', 'free-ride', 'copy', 'resign', 'replay', 'equivocate', 'stale-base', 'malformed', 'oversized', 'silence', 'other-data',
] as const;
export type AttackName = (typeof ATTACKS)[number];

/** What the honest clusters should report about each attack (the reasons any of them may give). */
export const EXPECTED_REASONS: Readonly<Record<AttackName, readonly string[]>> = {
  'sign-flip': ['NoImprovement'],
  scale: ['NormOutlier'],
  noise: ['NoImprovement'],
  'free-ride': ['NoImprovement'],
  copy: ['NearCopy'],
  resign: ['Duplicate'],
  replay: ['WrongRound'],
  equivocate: ['Equivocation', 'Banned'],
  'stale-base': ['StaleBase'],
  malformed: ['Malformed'],
  oversized: ['TooLarge'],
  silence: ['Unavailable'],
  'other-data': ['NoImprovement', 'LowReputation'],
};

export function isAttack(name: string): name is AttackName {
  return (ATTACKS as readonly string[]).includes(name);
}

export function attack(name: AttackName): Misbehaviour {
  /** The payload hash this attacker last committed to, for its self-vote. */
  let committed: { payloadHash: Buffer; header: Envelope } | undefined;
  const selfVote: NonNullable<Misbehaviour['manifest']> = (entries, ctx) => {
    if (committed === undefined || entries.some((e) => Buffer.from(e.payloadHash).equals(committed!.payloadHash))) return entries;
    return [...entries, { payloadHash: committed.payloadHash, contributor: ctx.identity.publicKey, scorePpm: PPM, header: committed.header }];
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
  }
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
