// Agreement: each coordinator signs a manifest of the contributions it accepts; after the
// exchange every coordinator runs `agree` over the manifests it holds. The function is pure and
// canonical (everything is sorted, integer arithmetic), so coordinators holding the same
// manifests compute the same set and weights, whatever order the manifests arrived in.
import type { KeyObject } from 'node:crypto';
import { create, fromBinary } from '@bufbuild/protobuf';
import type { Envelope } from '../../../proto/gen/concord/v1/envelope_pb.js';
import { EnvelopeHeaderSchema } from '../../../proto/gen/concord/v1/envelope_pb.js';
import { ContributionHeaderSchema, ManifestSchema, type ContributionHeader, type Manifest } from '../../../proto/gen/concord/v1/federation_pb.js';
import { clip, openEnvelope } from '../federation/envelope.js';
import { peerIdOf } from '../federation/identity.js';
import { Limits } from '../federation/limits.js';
import { Refusal } from '../federation/refusal.js';
import { statementHash } from './contribution.js';
import { EquivocationDetector, verifyEquivocationEvidence, type EquivocationEvidence } from './equivocation.js';
import { reject, RejectionReason, type Rejection } from './reasons.js';

/** At most this many entries in one manifest (federation.proto). */
export const MAX_MANIFEST_ENTRIES = 1024;
/** Scores are integer millionths. */
export const PPM = 1_000_000;

export interface AcceptedContribution {
  /** SHA-256 of the payload (32 bytes). */
  payloadHash: Uint8Array;
  /** The contributor's raw public key (32 bytes). */
  contributor: Uint8Array;
  /** Its score in millionths, 1 to 1,000,000 (a score of 0 is a rejection, not an entry). */
  scorePpm: number;
  /** The contributor's signed ContributionHeader statement that commits to this payload. */
  header: Envelope;
}

/** At most this many equivocation proofs (pairs) in one manifest (federation.proto). */
export const MAX_MANIFEST_EQUIVOCATIONS = 64;

/**
 * This coordinator's manifest for a round, ready for sealEnvelope (schema ManifestSchema): the
 * accepted contributions sorted by payload hash (byte order). Throws on what the coordinator
 * should never produce: a wrong-sized hash or key, a score outside 1..1,000,000 or not an
 * integer, two entries with one payload hash (a Duplicate left unresolved), too many entries.
 */
export function buildManifest(runId: string, round: bigint, accepted: readonly AcceptedContribution[], equivocations: readonly EquivocationEvidence[] = []): Manifest {
  if (accepted.length > MAX_MANIFEST_ENTRIES) throw new Error(`a manifest holds at most ${MAX_MANIFEST_ENTRIES} entries, got ${accepted.length}`);
  const entries = accepted.map((a) => {
    if (a.payloadHash.length !== Limits.hashBytes) throw new Error(`payload hash must be ${Limits.hashBytes} bytes, got ${a.payloadHash.length}`);
    if (a.contributor.length !== Limits.publicKeyBytes) throw new Error(`contributor must be a ${Limits.publicKeyBytes}-byte key, got ${a.contributor.length} bytes`);
    if (!Number.isInteger(a.scorePpm) || a.scorePpm < 1 || a.scorePpm > PPM) throw new Error(`score must be an integer from 1 to ${PPM} ppm, got ${a.scorePpm}`);
    return { payloadHash: Buffer.from(a.payloadHash), contributor: Buffer.from(a.contributor), scorePpm: a.scorePpm, header: a.header };
  }).sort((a, b) => Buffer.compare(a.payloadHash, b.payloadHash));
  for (let i = 1; i < entries.length; i++) {
    if (entries[i]!.payloadHash.equals(entries[i - 1]!.payloadHash)) throw new Error(`payload ${entries[i]!.payloadHash.toString('hex').slice(0, 16)}… is listed twice`);
  }
  const proofs = equivocations.slice(0, MAX_MANIFEST_EQUIVOCATIONS).flatMap((pair) => [...pair]);
  return create(ManifestSchema, { runId, round, entries, equivocations: proofs });
}

/** What is wrong with a manifest's entries, or undefined: the shape buildManifest produces. */
export function manifestProblem(manifest: Manifest): Rejection | undefined {
  const { entries } = manifest;
  if (entries.length > MAX_MANIFEST_ENTRIES) return reject(RejectionReason.TooLarge, `manifest has ${entries.length} entries, at most ${MAX_MANIFEST_ENTRIES}`);
  for (const [i, e] of entries.entries()) {
    if (e.payloadHash.length !== Limits.hashBytes) return reject(RejectionReason.Malformed, `entry ${i}: payload hash must be ${Limits.hashBytes} bytes, got ${e.payloadHash.length}`);
    if (e.contributor.length !== Limits.publicKeyBytes) return reject(RejectionReason.Malformed, `entry ${i}: contributor must be a ${Limits.publicKeyBytes}-byte key, got ${e.contributor.length} bytes`);
    if (e.scorePpm > PPM) return reject(RejectionReason.Malformed, `entry ${i}: score ${e.scorePpm} ppm is above ${PPM}`);
    if (e.header === undefined) return reject(RejectionReason.Malformed, `entry ${i}: has no contribution header`);
    // Strictly ascending: sorted, and no payload listed twice (with two contributors or scores).
    if (i > 0 && Buffer.compare(entries[i - 1]!.payloadHash, e.payloadHash) >= 0) return reject(RejectionReason.Malformed, `entry ${i}: entries must be sorted by payload hash, each once`);
  }
  if (manifest.equivocations.length % 2 !== 0 || manifest.equivocations.length > 2 * MAX_MANIFEST_EQUIVOCATIONS) {
    return reject(RejectionReason.Malformed, `equivocations must be at most ${MAX_MANIFEST_EQUIVOCATIONS} pairs, got ${manifest.equivocations.length} envelopes`);
  }
  return undefined;
}

export interface ExpectedManifest {
  runId: string;
  round: bigint;
  keyFor: (signer: Buffer) => KeyObject | undefined;
}

/** A manifest statement whose signature verified. */
export interface SignedManifest {
  signer: Buffer;
  manifest: Manifest;
  /** The statement as received; with it, `agree` can return evidence of equivocation. */
  envelope?: Envelope;
}

export type ManifestCheck = ({ ok: true } & SignedManifest) | (Rejection & { signed?: SignedManifest });

/**
 * Opens a manifest statement (envelope without a session, body Manifest) and checks it: the
 * envelope as openEnvelope does, then run and round as the envelope's, the round, the entries.
 * Whether the signer is active in the round is `agree`'s question. `signed` as in
 * checkContributionHeader: present when the signature verified, for the EquivocationDetector.
 */
export function checkManifest(envelope: Envelope | undefined, expected: ExpectedManifest): ManifestCheck {
  let opened;
  try {
    opened = openEnvelope(envelope, { kind: 'statement', runId: expected.runId, schema: ManifestSchema, keyFor: expected.keyFor });
  } catch (error) {
    if (error instanceof Refusal) {
      const reason = error.reason === 'UnknownPeer' || error.reason === 'BadSignature' || error.reason === 'WrongRun' || error.reason === 'TooLarge' ? error.reason : RejectionReason.Malformed;
      return reject(reason, error.message);
    }
    throw error;
  }
  const { header, signer, body: manifest } = opened;
  if (manifest.runId !== header.runId || manifest.round !== header.round) {
    return reject(RejectionReason.Malformed, `manifest says run "${clip(manifest.runId)}" round ${manifest.round}, its envelope run "${clip(header.runId)}" round ${header.round}`);
  }
  const signed: SignedManifest = { signer, manifest, envelope: envelope! };
  if (manifest.round !== expected.round) return { ...reject(RejectionReason.WrongRound, `manifest is for round ${manifest.round}, this is round ${expected.round}`), signed };
  const problem = manifestProblem(manifest);
  if (problem !== undefined) return { ...problem, signed };
  return { ok: true, ...signed };
}

export interface AgreedContribution {
  payloadHash: Buffer;
  contributor: Buffer;
  /** peerIdOf(contributor): the aggregate's canonical order. */
  peerId: string;
  /** Median over all active peers' scores, 0 for those not including it (integer ppm). */
  scorePpm: number;
  /** scorePpm / 1e6, for trainer/src/outer/aggregate.ts. */
  score: number;
  /** Tokens from the contributor's signed header (carried in the manifests' entries). */
  tokens: bigint;
  /** Number of active peers whose manifests include it. */
  votes: number;
}

export interface RefusedManifest {
  /** peerIdOf(signer). */
  peerId: string;
  reason: RejectionReason;
  detail: string;
  /** For Equivocation with envelopes given: two of the signer's conflicting manifests. */
  evidence?: EquivocationEvidence;
}

export interface Agreement {
  /** The round's contributions, sorted by contributor peer id. */
  accepted: AgreedContribution[];
  /** Manifests not counted, sorted by peer id, then reason, then detail; repeats listed once. */
  refused: RefusedManifest[];
  /**
   * Contributors proven to have equivocated in the round: two different signed headers appear
   * in the counted manifests' entries, or a counted manifest carries a verified proof. None of
   * their contributions is applied. Sorted by peer id; `evidence` is one proof.
   */
  conflicts: Array<{ peerId: string; evidence: EquivocationEvidence }>;
  /** Distinct active peers, and the votes a contribution needed: more than half of them. */
  active: number;
  needed: number;
}

/**
 * The contributions of the round. Rules:
 *  - a manifest counts if it is for this run and round, its signer is one of `activePeers`
 *    (peer ids), and its entries are well-formed; otherwise it is refused with a reason;
 *  - one manifest per signer: copies of the same manifest count once; two different ones are
 *    equivocation, and none of that signer's manifests counts (the signer still counts in the
 *    denominator, as an active peer that includes nothing);
 *  - a contribution (payload hash, contributor) is in iff MORE THAN HALF of the active peers'
 *    manifests include it (votes · 2 > active; exactly half is not enough). Active peers that
 *    sent no manifest count as not including it, so silence cannot lower the bar;
 *  - every entry carries the contributor's signed header for the payload; a manifest with an
 *    entry whose header does not verify (signer = contributor, this run and round, this
 *    payload) or with an equivocation proof that does not verify is refused (Malformed). The
 *    tokens come from the header;
 *  - a contributor with two different signed headers among the counted manifests' entries, or
 *    with a verified proof in any of them, equivocated: none of its entries counts (conflicts).
 *    Everything here is verifiable, so a dishonest manifest cannot get an honest contributor
 *    excluded this way;
 *  - its score is the median over ALL active peers of their manifests' score_ppm, a peer whose
 *    manifest does not include it (or who sent none) counting as 0 (the middle one, or the
 *    integer floor of the mean of the two middle ones). With a dishonest minority, the median
 *    of all active peers' values lies between two honest values, so colluders voting 1.0 for
 *    each other cannot lift a score past what the honest peers gave (score stuffing); and a
 *    contribution in the set (more than half include it) always has a median above 0;
 *  - a contribution whose combined score is 0 is left out: it would carry no weight, but would
 *    still count in the median norm the aggregate clips to;
 * Everything is sorted canonically; the same inputs in any order give the same result.
 */
export function agree(manifests: readonly SignedManifest[], activePeers: readonly string[], options: { runId: string; round: bigint; keyFor: (signer: Buffer) => KeyObject | undefined; rule?: TallyRule }): Agreement {
  const active = new Set(activePeers);
  const needed = Math.floor(active.size / 2) + 1;
  const refused: RefusedManifest[] = [];
  /** Headers already verified, by statement hash: the same header appears in many manifests. */
  const verified = new Map<string, ContributionHeader>();
  // Per signer, its distinct manifests by canonical content.
  const bySigner = new Map<string, Map<string, SignedManifest>>();
  for (const signed of manifests) {
    const peerId = peerIdOf(signed.signer);
    const { manifest } = signed;
    const problem =
      signed.signer.length !== Limits.publicKeyBytes ? reject(RejectionReason.Malformed, `signer must be a ${Limits.publicKeyBytes}-byte key`)
      : manifest.runId !== options.runId ? reject(RejectionReason.WrongRun, `manifest is for run "${clip(manifest.runId)}", this is run "${options.runId}"`)
      : manifest.round !== options.round ? reject(RejectionReason.WrongRound, `manifest is for round ${manifest.round}, this is round ${options.round}`)
      : !active.has(peerId) ? reject(RejectionReason.NotActive, `signer ${peerId} is not an active peer of round ${options.round}`)
      : manifestProblem(manifest) ?? statementsProblem(manifest, options, verified);
    if (problem !== undefined) {
      refused.push({ peerId, reason: problem.reason, detail: problem.detail });
      continue;
    }
    let versions = bySigner.get(peerId);
    if (versions === undefined) bySigner.set(peerId, (versions = new Map()));
    const content = manifest.entries.map((e) => `${hex(e.payloadHash)}:${hex(e.contributor)}:${e.scorePpm}`).join(',');
    // Of identical copies keep one that has its envelope, for evidence.
    if (!versions.has(content) || versions.get(content)!.envelope === undefined) versions.set(content, signed);
  }

  for (const [peerId, versions] of bySigner) {
    if (versions.size < 2) continue;
    const [a, b] = [...versions.keys()].sort().map((content) => versions.get(content)!);
    const evidence: EquivocationEvidence | undefined = a!.envelope !== undefined && b!.envelope !== undefined ? [a!.envelope, b!.envelope] : undefined;
    refused.push({ peerId, reason: RejectionReason.Equivocation, detail: `signed ${versions.size} different manifests for round ${options.round}`, ...(evidence ? { evidence } : {}) });
  }

  // Equivocation among the counted manifests: every header their entries carry goes through
  // one detector, and every proof they carry is checked.
  const counted = [...bySigner.values()].filter((versions) => versions.size === 1).map((versions) => [...versions.values()][0]!);
  const detector = new EquivocationDetector();
  const equivocators = new Map<string, EquivocationEvidence>();
  for (const signed of counted) {
    const { entries, equivocations } = signed.manifest;
    for (const entry of entries) {
      const check = detector.record(entry.header!);
      if (!check.ok && check.reason === RejectionReason.Equivocation && !equivocators.has(peerIdOf(entry.contributor))) equivocators.set(peerIdOf(entry.contributor), check.evidence);
    }
    for (let i = 0; i + 1 < equivocations.length; i += 2) {
      const accused = peerIdOf(fromBinary(EnvelopeHeaderSchema, equivocations[i]!.header).signer);
      if (!equivocators.has(accused)) equivocators.set(accused, [equivocations[i]!, equivocations[i + 1]!]);
    }
  }

  const ballots: Ballot[] = counted.map((signed) => ({
    signer: peerIdOf(signed.signer),
    entries: signed.manifest.entries.filter((entry) => !equivocators.has(peerIdOf(entry.contributor))).map((entry) => ({
      payload: hex(entry.payloadHash), contributor: peerIdOf(entry.contributor), scorePpm: entry.scorePpm,
      tokens: verified.get(statementHash(entry.header!).toString('hex'))!.tokens,
    })),
  }));
  const byPayload = new Map(counted.flatMap((signed) => signed.manifest.entries.map((e) => [hex(e.payloadHash), { payloadHash: Buffer.from(e.payloadHash), contributor: Buffer.from(e.contributor) }] as const)));
  const accepted: AgreedContribution[] = tally(ballots, active.size, options.rule).map((t) => ({
    ...byPayload.get(t.payload)!, peerId: t.contributor, scorePpm: t.scorePpm, score: t.scorePpm / PPM, tokens: t.tokens, votes: t.votes,
  }));
  const conflicts = [...equivocators.entries()].sort(([a], [b]) => compareText(a, b)).map(([peerId, evidence]) => ({ peerId, evidence }));
  refused.sort((a, b) => compareText(a.peerId, b.peerId) || compareText(a.reason, b.reason) || compareText(a.detail, b.detail));
  // A refused manifest received twice (relayed) is one refusal.
  const distinctRefusals = refused.filter((r, i) => i === 0 || r.peerId !== refused[i - 1]!.peerId || r.reason !== refused[i - 1]!.reason || r.detail !== refused[i - 1]!.detail);
  return { accepted, refused: distinctRefusals, conflicts, active: active.size, needed };
}

/** One counted manifest, as plain data: its signer's vote for each contribution it includes. */
export interface Ballot {
  /** Peer id of the manifest's signer. */
  signer: string;
  entries: ReadonlyArray<{ payload: string; contributor: string; scorePpm: number; tokens: bigint }>;
}

export interface TalliedContribution {
  payload: string;
  contributor: string;
  scorePpm: number;
  tokens: bigint;
  votes: number;
}

/**
 * How scores combine. `all-active` (the rule): the median over every active peer, 0 for those
 * whose ballot leaves the contribution out. `including`: the median over the including ballots
 * only — the old rule, which colluders could stuff; kept so that tests can show what the rule
 * defends against.
 */
export type TallyRule = { scores: 'all-active' | 'including' };

/**
 * The decision on counted ballots (one per signer, already checked): a contribution is in iff
 * more than half of `active` ballots include it, with the score the rule says, if that is above
 * 0. Sorted by contributor peer id, then payload. Pure; the same ballots in any order give the
 * same result.
 */
export function tally(ballots: readonly Ballot[], active: number, rule: TallyRule = { scores: 'all-active' }): TalliedContribution[] {
  const votes = new Map<string, { payload: string; contributor: string; scores: number[]; tokens: bigint }>();
  for (const ballot of ballots) {
    for (const entry of ballot.entries) {
      const key = `${entry.payload}:${entry.contributor}`;
      let vote = votes.get(key);
      if (vote === undefined) votes.set(key, (vote = { payload: entry.payload, contributor: entry.contributor, scores: [], tokens: entry.tokens }));
      vote.scores.push(entry.scorePpm);
    }
  }
  const accepted: TalliedContribution[] = [];
  for (const vote of votes.values()) {
    if (vote.scores.length * 2 <= active) continue;
    const scores = rule.scores === 'all-active' ? [...vote.scores, ...new Array<number>(Math.max(0, active - vote.scores.length)).fill(0)] : vote.scores;
    const scorePpm = medianPpm(scores);
    if (scorePpm === 0) continue;
    accepted.push({ payload: vote.payload, contributor: vote.contributor, scorePpm, tokens: vote.tokens, votes: vote.scores.length });
  }
  // One payload per contributor: two would need two headers, which is equivocation, excluded before.
  return accepted.sort((a, b) => compareText(a.contributor, b.contributor) || compareText(a.payload, b.payload));
}

/**
 * Checks the statements a manifest carries: each entry's header (a statement by the entry's
 * contributor, a verifiable key, for this run and round, committing to this payload) and each
 * equivocation proof (verifyEquivocationEvidence, for this run and round, of contribution
 * headers). Verified headers are remembered in `verified` by statement hash.
 */
function statementsProblem(manifest: Manifest, options: { runId: string; round: bigint; keyFor: (signer: Buffer) => KeyObject | undefined }, verified: Map<string, ContributionHeader>): Rejection | undefined {
  for (const [i, entry] of manifest.entries.entries()) {
    const key = statementHash(entry.header!).toString('hex');
    if (verified.has(key)) {
      if (!Buffer.from(verified.get(key)!.payloadHash).equals(entry.payloadHash)) return reject(RejectionReason.Malformed, `entry ${i}: its header commits to another payload`);
      continue;
    }
    let opened;
    try {
      opened = openEnvelope(entry.header, { kind: 'statement', runId: options.runId, schema: ContributionHeaderSchema, keyFor: options.keyFor });
    } catch (error) {
      if (error instanceof Refusal) return reject(RejectionReason.Malformed, `entry ${i}: header: ${error.reason}: ${error.message}`);
      throw error;
    }
    const header = opened.body;
    if (!opened.signer.equals(entry.contributor)) return reject(RejectionReason.Malformed, `entry ${i}: its header is signed by another key than the contributor's`);
    if (header.runId !== options.runId || header.round !== options.round || opened.header.round !== options.round) return reject(RejectionReason.Malformed, `entry ${i}: its header is for run "${clip(header.runId)}" round ${header.round}`);
    if (!Buffer.from(header.payloadHash).equals(entry.payloadHash)) return reject(RejectionReason.Malformed, `entry ${i}: its header commits to another payload`);
    verified.set(key, header);
  }
  const proofs = manifest.equivocations;
  for (let i = 0; i + 1 < proofs.length; i += 2) {
    let signer: Uint8Array;
    try {
      signer = fromBinary(EnvelopeHeaderSchema, proofs[i]!.header).signer;
    } catch {
      return reject(RejectionReason.Malformed, `equivocation proof ${i / 2}: does not decode`);
    }
    const verdict = verifyEquivocationEvidence([proofs[i]!, proofs[i + 1]!], signer);
    if (!verdict.ok) return reject(RejectionReason.Malformed, `equivocation proof ${i / 2}: ${verdict.problem}`);
    if (verdict.kind !== ContributionHeaderSchema.typeName || verdict.runId !== options.runId || verdict.round !== options.round) {
      return reject(RejectionReason.Malformed, `equivocation proof ${i / 2}: not of contribution headers of run "${options.runId}" round ${options.round}`);
    }
    if (options.keyFor(Buffer.from(signer)) === undefined) return reject(RejectionReason.Malformed, `equivocation proof ${i / 2}: accuses a key that is not a peer of the run`);
  }
  return undefined;
}

/** Median of integer scores in integer arithmetic: the middle one, or ⌊(a + b) / 2⌋ of the two middle ones. */
export function medianPpm(scores: readonly number[]): number {
  if (scores.length === 0) throw new Error('median of no scores');
  const sorted = [...scores].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : Math.floor((sorted[middle - 1]! + sorted[middle]!) / 2);
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}
