// Copies: a peer that re-signs another peer's payload (Duplicate) or sends a perturbed copy of
// it (NearCopy) would be paid for work it did not do. Both are caught by comparing what the
// contributions committed to, before anything is scored.
import { RejectionReason } from './reasons.js';

export interface CopyCandidate {
  /** The signer's peer id. One candidate per peer (two would be equivocation). */
  peerId: string;
  /** SHA-256 of the payload (from the verified header). */
  payloadHash: Uint8Array;
  /** The kept positions, ascending (SparseUpdate.indices). */
  indices: Uint32Array;
  /**
   * Position of the signer's header in this coordinator's commit log for the round: the order in
   * which it first held each header (from the author or relayed). Smaller = committed earlier.
   * Equal positions (e.g. headers that arrived in one Announcement) fall back to the peer id.
   */
  committed: number;
}

export interface CopyOptions {
  /**
   * A contribution is a near-copy of an earlier one when more than this fraction of its kept
   * positions are also kept by the other: overlap = |A ∩ B| / min(|A|, |B|). Default 0.5.
   *
   * Why 0.5. Honest peers train the same model from the same base on disjoint data: their
   * pseudo-gradients point in similar directions densely (cosine 0.62–0.68 measured below) but
   * their top-k positions differ, because what is largest in a peer's update is peer-specific
   * (the rows of the tokens in its own data, its own error-feedback history). Measured with the
   * real trainer: 4 peers, the 0.93M-parameter GPT of `npm run study`, 10 inner steps per round,
   * SparseLoCo 64/4096 2-bit, 12 rounds: overlap of honest pairs 0.04–0.16 (0.016 would be
   * chance), falling as training goes on. A copy re-encoded with Gaussian noise of 0.1 × the RMS of the kept values on every
   * position keeps 0.93–1.0; to push the overlap below 0.5 the copier must add noise of about 0.5 ×
   * that RMS everywhere, which is ~4× the norm of the update it copies (then it is mostly noise,
   * and scoring rejects it). A sign-flipped or scaled copy keeps 1.0. The synthetic test in
   * test/unit/rounds-duplicates.test.ts reproduces the separation with a pessimistic model of
   * honest updates (Gaussian, cosine 0.5: overlap ≈ 0.26).
   */
  threshold?: number;
}

export interface CopyRejection {
  peerId: string;
  reason: typeof RejectionReason.Duplicate | typeof RejectionReason.NearCopy;
  /** The earlier contribution it copies. */
  of: string;
  /** Overlap coefficient with it (1 for a Duplicate). */
  overlap: number;
  detail: string;
}

export interface CopyVerdict {
  /** The contributions that are not copies, in rank order (committed, then peer id). */
  kept: CopyCandidate[];
  rejected: CopyRejection[];
}

/**
 * Finds copies among the round's contributions. Rule: rank them by (committed, peer id); walk in
 * rank order; a contribution with the payload hash of an earlier kept one is a Duplicate of it,
 * else one whose overlap with an earlier kept one exceeds the threshold is a NearCopy of it (the
 * first such in rank order is named); otherwise it is kept. So the later committer (the
 * re-signer: it must have seen the original to copy it) loses, and of two committed at the same
 * position the lexicographically larger peer id loses. Compared only against kept contributions,
 * so a rejected copy cannot knock out a third one.
 *
 * The commit order is local to each coordinator; when two coordinators see it differently they
 * keep different ones, the manifests then give neither a majority, and the round goes on without
 * both — the honest clusters still agree. Cost: O(n² · k) for n contributions of k kept values.
 */
export function findCopies(candidates: readonly CopyCandidate[], options: CopyOptions = {}): CopyVerdict {
  const threshold = options.threshold ?? 0.5;
  if (!(threshold > 0 && threshold <= 1)) throw new Error(`near-copy threshold must be in (0, 1], got ${threshold}`);
  const ranked = [...candidates].sort((a, b) => a.committed - b.committed || (a.peerId < b.peerId ? -1 : a.peerId > b.peerId ? 1 : 0));
  const seen = new Set<string>();
  for (const c of ranked) {
    if (!Number.isFinite(c.committed)) throw new Error(`peer ${c.peerId} has no commit position (${c.committed})`);
    if (seen.has(c.peerId)) throw new Error(`peer ${c.peerId} has two candidates: resolve its equivocation first`);
    seen.add(c.peerId);
  }
  const kept: CopyCandidate[] = [];
  const rejected: CopyRejection[] = [];
  for (const candidate of ranked) {
    const hash = Buffer.from(candidate.payloadHash);
    let verdict: CopyRejection | undefined;
    for (const original of kept) {
      if (hash.equals(original.payloadHash)) {
        verdict = { peerId: candidate.peerId, reason: RejectionReason.Duplicate, of: original.peerId, overlap: 1, detail: `same payload as ${original.peerId}, committed earlier` };
        break;
      }
      const overlap = indexOverlap(candidate.indices, original.indices);
      if (overlap > threshold) {
        verdict = { peerId: candidate.peerId, reason: RejectionReason.NearCopy, of: original.peerId, overlap, detail: `${(overlap * 100).toFixed(1)}% of its kept positions are those of ${original.peerId}, committed earlier (threshold ${threshold * 100}%)` };
        break;
      }
    }
    if (verdict === undefined) kept.push(candidate);
    else rejected.push(verdict);
  }
  return { kept, rejected };
}

/**
 * Overlap coefficient of two ascending index sets: |A ∩ B| / min(|A|, |B|), in [0, 1]; 0 if
 * either is empty. Of the coefficients it is the one a subset cannot dodge: a copy that keeps
 * only half the original's positions still overlaps 1.0. (Jaccard would give 0.5 there; for
 * equal sizes, as with one run's codec parameters, Jaccard = o / (2 − o).) One merge pass.
 */
export function indexOverlap(a: Uint32Array, b: Uint32Array): number {
  if (a.length === 0 || b.length === 0) return 0;
  let i = 0;
  let j = 0;
  let shared = 0;
  while (i < a.length && j < b.length) {
    const x = a[i]!;
    const y = b[j]!;
    if (x === y) {
      shared++;
      i++;
      j++;
    } else if (x < y) i++;
    else j++;
  }
  return shared / Math.min(a.length, b.length);
}
