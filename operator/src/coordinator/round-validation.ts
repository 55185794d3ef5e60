// The validate phase of a round (round-driver.ts): bans, copies, norm outliers, Gauntlet scores
// from evaluate tasks on this cluster's trainers, reputation updates and their metrics. It is
// separate because it needs little of the driver — the reputation, the trainers and the
// settings below — and it reads and writes the round only through its RoundBook, so what decides
// a contribution's score can be read without the rest of the round's I/O.
import { decodePayload } from '../../../trainer/src/codec/index.js';
import { sha256 } from '../federation/blob-store.js';
import type { PeerDirectory } from '../federation/peers.js';
import type { Logger } from '../log.js';
import type { RoundMetrics } from '../metrics/rounds.js';
import { findCopies } from '../rounds/duplicates.js';
import { medianOf, normOutliers } from '../rounds/norms.js';
import { PENALISES_SIGNER, RejectionReason } from '../rounds/reasons.js';
import type { Reputation } from '../rounds/reputation.js';
import { judge, relativeWork, sampleSeed, type EvaluationLosses } from '../rounds/score.js';
import { boundedWeights } from '../../../trainer/src/outer/weights.js';
import type { Identity } from '../federation/identity.js';
import type { Commit, RoundBook } from './round-book.js';
import { describe } from './round-common.js';
import type { RoundSettings } from './round-settings.js';
import type { TrainerGateway } from './trainer-gateway.js';

/** What validation needs from the coordinator: nothing else of the round driver. */
export interface ValidationDeps {
  runId: string;
  /** Signs each contribution's sample seed (score.ts, sampleSeed). */
  identity: Identity;
  settings: Pick<RoundSettings, 'runSeed' | 'validation' | 'claims'>;
  /** The outer optimizer's learning rate and the model's sequence length: the evaluated step, and sequences from tokens. */
  outerLr: number;
  seqLen: number;
  reputation: Reputation;
  /** This cluster's trainers, which run the evaluate tasks. */
  gateway: TrainerGateway;
  metrics: RoundMetrics;
  log: Logger;
  /** Peers and this coordinator: whose reputation is reported, by peer name. */
  members: PeerDirectory;
  /** Their peer ids, sorted: whose reputation the round updates, and assign()'s peer list. */
  memberIds: string[];
  ownPeerId: string;
  /** Parameters of the model (to decode payloads). */
  modelLength: number;
}

export class RoundValidation {
  private readonly deps: ValidationDeps;

  constructor(deps: ValidationDeps) {
    this.deps = deps;
  }

  /**
   * Scores the round's ready contributions, rejecting in `book` what fails a check, and updates
   * reputations. `baseBlob` is the round's base parameters as trainers fetch them. Returns the
   * scores by contributor peer id (0 for a rejected one).
   */
  async validate(book: RoundBook, baseBlob: Buffer): Promise<Map<string, number>> {
    const { reputation } = this.deps;
    const scores = new Map<string, number>();
    let candidates = book.ready();
    for (const c of candidates) {
      const ban = reputation.banOf(c.peerId);
      if (ban !== undefined) book.reject(c.peerId, RejectionReason.Banned, `banned in round ${ban.round}: ${ban.reason}`);
    }
    candidates = candidates.filter((c) => !book.rejected(c.peerId));
    const copies = findCopies(candidates.map((c) => ({
      peerId: c.peerId, payloadHash: c.signed.header.payloadHash, committed: c.order,
      indices: decodePayload(c.payload!, this.deps.modelLength).indices,
    })));
    for (const copy of copies.rejected) book.reject(copy.peerId, copy.reason, copy.detail);
    for (const outlier of normOutliers(candidates.filter((c) => !book.rejected(c.peerId)).map((c) => ({ peerId: c.peerId, norm: c.norm })))) {
      book.reject(outlier.peerId, RejectionReason.NormOutlier, `norm ${outlier.norm.toPrecision(3)} is more than 10× the median ${outlier.median.toPrecision(3)}`);
    }
    candidates = candidates.filter((c) => !book.rejected(c.peerId));
    // Reputation as it stood before this round decides exclusion; the round's score still
    // counts, so an excluded peer can climb back.
    const lowReputation = new Set(candidates.filter((c) => reputation.excluded(c.peerId) === RejectionReason.LowReputation).map((c) => c.peerId));
    const sampled = this.sample(book.round, candidates);
    const losses = await this.evaluate(book, sampled, candidates, baseBlob);
    for (const c of candidates) {
      if (!sampled.includes(c)) {
        // Not evaluated this round: it carries the contributor's reputation.
        if (lowReputation.has(c.peerId)) book.reject(c.peerId, RejectionReason.LowReputation, `reputation ${reputation.value(c.peerId).toFixed(3)} is below the floor`);
        else scores.set(c.peerId, reputation.value(c.peerId));
        continue;
      }
      const loss = losses.get(c.peerId);
      if (loss === undefined) {
        book.reject(c.peerId, RejectionReason.Unavailable, 'no trainer could evaluate it');
        continue;
      }
      const verdict = judge(loss.losses, this.deps.settings.validation);
      book.evaluations.set(c.peerId, { step: loss.step, own: verdict.own, control: verdict.control, all: verdict.all, specificity: verdict.specificity });
      scores.set(c.peerId, verdict.score);
      if (verdict.score === 0) book.reject(c.peerId, RejectionReason.NoImprovement, verdict.detail ?? 'no improvement');
    }
    const weak = relativeWork([...book.evaluations].map(([peerId, e]) => ({ peerId, step: e.step, all: e.all })), this.deps.settings.validation.relative);
    for (const { peerId, detail } of weak) {
      if (book.rejected(peerId)) continue;
      scores.set(peerId, 0);
      book.reject(peerId, RejectionReason.NoImprovement, detail);
    }
    for (const peerId of lowReputation) {
      if (scores.get(peerId) === 1 && !book.rejected(peerId)) book.reject(peerId, RejectionReason.LowReputation, `reputation ${reputation.value(peerId).toFixed(3)} is below the floor`);
    }
    // Reputation: the round's score, or 0 for a rejection the signer is accountable for; a
    // contribution that was not evaluated leaves it as it was.
    for (const peerId of this.deps.memberIds) {
      const penalised = book.rejections.some((r) => r.peerId === peerId && PENALISES_SIGNER[r.reason]);
      if (penalised) reputation.update(peerId, 0);
      else if (scores.has(peerId) && sampled.some((c) => c.peerId === peerId)) reputation.update(peerId, scores.get(peerId)!);
    }
    for (const r of [...book.rejections, ...book.stale]) this.deps.metrics.contributionsRejected.inc({ reason: r.reason });
    for (const peer of this.deps.members.list()) this.deps.metrics.reputation.set({ peer: peer.name }, reputation.value(peer.peerId));
    for (const [peerId, score] of scores) if (book.rejected(peerId)) scores.set(peerId, 0);
    return scores;
  }

  /** The candidates this coordinator evaluates in `round` (validation.sample; default all). */
  private sample(round: bigint, candidates: Commit[]): Commit[] {
    const limit = this.deps.settings.validation.sample;
    if (limit === undefined || candidates.length <= limit) return candidates;
    const rank = (c: Commit) => sha256(Buffer.from(`${this.deps.ownPeerId}:${round}:${c.peerId}`)).toString('hex');
    return [...candidates].sort((a, b) => (rank(a) < rank(b) ? -1 : 1)).slice(0, limit);
  }

  /**
   * Per-sequence losses of each sampled candidate, evaluated on this cluster's trainers in
   * parallel, at the step the round's update would take with it: the outer learning rate × its
   * share among the candidates (tokens as claimed, bounded as the aggregate bounds them) × its
   * clip to the candidates' median norm. Each draws its samples from this coordinator's
   * sampleSeed() of its header.
   */
  private async evaluate(book: RoundBook, sampled: Commit[], candidates: Commit[], baseBlob: Buffer) {
    const { gateway, settings, identity } = this.deps;
    const out = new Map<string, { step: number; losses: EvaluationLosses }>();
    const trainers = gateway.trainers().map((t) => t.trainerId).sort();
    if (trainers.length === 0) return out;
    const { shares, countedTokens } = boundedWeights(candidates.map((c) => ({ tokens: Number(c.signed.header.tokens), score: 1 })), {
      relativeTokenCap: settings.claims.relativeTokenCap, maxShare: settings.claims.maxShare,
      ...(settings.claims.maxTokensPerRound !== undefined ? { maxTokens: settings.claims.maxTokensPerRound } : {}),
    });
    const medianNorm = medianOf(candidates.map((c) => c.norm));
    await Promise.all(sampled.map(async (c, i) => {
      const index = candidates.indexOf(c);
      const clip = c.norm > medianNorm ? medianNorm / c.norm : 1;
      const step = this.deps.outerLr * shares[index]! * clip;
      for (let attempt = 0; attempt < Math.min(2, trainers.length); attempt++) {
        const trainerId = trainers[(i + attempt) % trainers.length]!;
        try {
          const outcome = await gateway.run(trainerId, {
            case: 'evaluate',
            value: {
              round: book.round, baseHash: baseBlob, payloadHash: c.signed.header.payloadHash, contributorPeerId: c.peerId,
              step, peers: this.deps.memberIds, runSeed: settings.runSeed, batches: settings.validation.batches,
              sampleSeed: sampleSeed(identity, c.signed.hash), trainedSequences: BigInt(Math.max(1, Math.floor(countedTokens[index]! / this.deps.seqLen))),
            },
          });
          if (outcome.result.case === 'evaluate') {
            const r = outcome.result.value;
            out.set(c.peerId, { step, losses: { own: { before: r.ownBefore, after: r.ownAfter }, control: { before: r.controlBefore, after: r.controlAfter } } });
          }
          return;
        } catch (error) {
          this.deps.log.warn('evaluate-failed', { round: book.round, trainerId, of: c.peerId, error: describe(error) });
        }
      }
    }));
    return out;
  }
}
