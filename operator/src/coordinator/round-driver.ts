// The round driver: runs a coordinator's outer rounds (DESIGN.md, "Data flow of one round").
//
//   align     agree with the majority on (round, model hash) — resync from a checkpoint if this
//             coordinator is behind or different — and on the training deadline
//   train     the cluster's trainers run inner steps until the deadline (trainRound)
//   contribute  compress with error feedback, sign the header, serve the payload
//   gather    announce own headers (every header received is relayed on receipt, in every
//             phase); fetch and check every peer's payload, until every
//             active peer is in, or a quorum is in and the window is over, or window + grace ends
//   validate  bans, copies, norm outliers, Gauntlet scores from evaluate tasks, reputation
//   agree     sign a manifest, exchange manifests (relayed on receipt) until every member has
//             one in or the round's common decision deadline, agree() on set and weights
//   apply     aggregate one decoded contribution at a time, the outer step, checkpoint
//
// Two phases have files of their own, each given only what it needs: gather, with the relaying
// and fetching that go on in every phase, in round-gather.ts; validate in round-validation.ts.
// This class runs the others, holds the round's state (a RoundBook, round-book.ts) and answers
// peers' round messages (RoundHandlers).
//
// Every decision is a pure function from operator/src/rounds/; these files do the I/O and the
// waiting. Peers that do not answer cost at most the grace period; nothing waits forever.
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { Envelope } from '../../../proto/gen/concord/v1/envelope_pb.js';
import type { PeerStatusSchema, RelayedManifest } from '../../../proto/gen/concord/v1/federation_pb.js';
import { decodePayload, SparseLoCoEncoder } from '../../../trainer/src/codec/index.js';
import { maxPayloadBytes, riceParameter } from '../../../trainer/src/codec/format.js';
import { aggregateStreaming } from '../../../trainer/src/outer/aggregate.js';
import type { WeightBounds } from '../../../trainer/src/outer/weights.js';
import type { TrainConfig } from '../../../trainer/src/train/config.js';
import type { MemoryBlobStore } from '../federation/blob-store.js';
import type { PartialTransfer, PeerClient } from '../federation/client.js';
import { sealEnvelope } from '../federation/envelope.js';
import { peerIdOf, type Identity } from '../federation/identity.js';
import { PeerDirectory, type PeerEntry } from '../federation/peers.js';
import type { RoundHandlers, RoundMessageSource } from '../federation/server.js';
import type { Logger } from '../log.js';
import type { RoundMetrics, RoundPhase } from '../metrics/rounds.js';
import { agree, buildManifest, checkManifest, type AcceptedContribution, type Agreement } from '../rounds/agreement.js';
import { alignmentOf, canJoin, isAhead, medianDeadline, type PeerState } from '../rounds/alignment.js';
import { checkContributionHeader, checkPayload, statementHash } from '../rounds/contribution.js';
import { encodeEvidence, EquivocationDetector } from '../rounds/equivocation.js';
import { RejectionReason } from '../rounds/reasons.js';
import type { Reputation } from '../rounds/reputation.js';
import { scoreToPpm } from '../rounds/score.js';
import { sleep } from '../runtime/backoff.js';
import { makeContribution, trainRound, type Contribution } from './contribute.js';
import type { BufferPool } from './buffer-pool.js';
import type { Misbehaviour, MisbehaviourContext } from './misbehaviour.js';
import type { ModelState } from './model-state.js';
import { RoundAgreement } from './round-agreement.js';
import { RoundBook, type Commit, type ContributionEvaluation } from './round-book.js';
import { describe, POLL_MS } from './round-common.js';
import { RoundGather } from './round-gather.js';
import type { RoundSettings } from './round-settings.js';
import { RoundValidation } from './round-validation.js';
import type { TrainerGateway } from './trainer-gateway.js';
import { TransferLimiter } from './transfer-limiter.js';

/** What one cluster decides for one partner's contributions (Peer spec.weight, spec.maxContributionBytes). */
export interface PeerPolicy {
  /** 0..1: multiplies this coordinator's score in its manifest; 0: it does not vote for them. */
  weight: number;
  /** Payloads above this are not voted for (nor fetched); absent: the run's limit. */
  maxContributionBytes?: number;
}

/** What PeerStatus.phase says (federation.proto). */
export type Phase = 'Idle' | 'Training' | 'Gathering' | 'Validating' | 'Agreeing' | 'Applying' | 'Syncing' | 'Done';

/** One round as this coordinator saw it: for logs, the local demo's report and tests. */
export interface RoundSummary {
  round: bigint;
  baseHash: string;
  /** The model hash after the round, and whether the majority reported the same. */
  modelHash: string;
  agreed: boolean | undefined;
  resynced: boolean;
  tokens: bigint;
  /** Token-weighted training loss of this cluster's trainers (NaN if none trained). */
  loss: number;
  contributed: boolean;
  /** Applied contributions: agreed score, share of the update, the decoded update's L2 norm and the factor it was clipped by (to the median norm). */
  accepted: Array<{ peerId: string; scorePpm: number; weight: number; norm: number; clip: number }>;
  rejected: Array<{ peerId: string; reason: RejectionReason; detail: string }>;
  /** This coordinator's own scores of the round's contributions (0 when rejected). */
  scores: Record<string, number>;
  /** What its evaluations measured, by contributor peer id (rounds/score.ts). */
  evaluations: Record<string, ContributionEvaluation>;
  /** The manifest it signed: by contributor peer id, the score it voted in ppm (its score × the
   * Peer's weight); what the agreement took the median of. */
  votes: Record<string, number>;
  /** This coordinator's reputation of each peer after the round, by peer id (rounds/reputation.ts). */
  reputation: Record<string, number>;
  phaseSeconds: Partial<Record<RoundPhase, number>>;
  /** Payloads fetched from peers in the round, and their compressed bytes. */
  payloadsReceived: number;
  payloadBytes: number;
  /** The model's float32 bytes: what one uncompressed pseudo-gradient would weigh. */
  denseBytes: number;
  /** Wall time of the whole round, from the start of training to the end of the hash check. */
  wallSeconds: number;
}

export interface RoundDriverOptions {
  name: string;
  runId: string;
  identity: Identity;
  peers: PeerDirectory;
  /** This cluster's settings for each peer (its Peer resources), by peer id; absent: weight 1,
   * the run's payload limit. */
  peerPolicies?: ReadonlyMap<string, PeerPolicy>;
  /** A client per remote peer, by peer name. */
  clients: ReadonlyMap<string, PeerClient>;
  settings: RoundSettings;
  train: TrainConfig;
  gateway: TrainerGateway;
  /** What trainers fetch: base parameters (by SHA-256 of their bytes) and payloads. */
  trainerBlobs: MemoryBlobStore;
  /** Payloads served to peers (own and relayed). */
  payloads: MemoryBlobStore;
  /** Shared checkpoints served to peers, by model hash. */
  checkpoints: MemoryBlobStore;
  state: ModelState;
  /** Error feedback to resume from (a restart), else zeros. */
  errorFeedback?: Float32Array;
  reputation: Reputation;
  metrics: RoundMetrics;
  log: Logger;
  /** Where the local checkpoint is written after every round; none if undefined. */
  checkpointDir?: string;
  /** Only after rounds whose number is a multiple of this (default 1; a resync always writes). */
  checkpointEveryRounds?: number;
  /** Model-sized scratch buffers shared with the trainer gateway's uploads. */
  buffers?: BufferPool;
  /** Trainers to wait for before the first round (default 1). */
  trainers?: number;
  /** Inner steps per train task at most (tests, benchmarks); default: until the deadline. */
  maxInnerSteps?: number;
  misbehaviour?: Misbehaviour;
  onRound?: (summary: RoundSummary) => void;
  onPhase?: (phase: Phase, round: bigint) => void;
}

export class RoundDriver implements RoundHandlers {
  private readonly options: RoundDriverOptions;
  private readonly state: ModelState;
  private readonly encoder: SparseLoCoEncoder;
  private readonly limiter: TransferLimiter;
  /** The gather phase, and the relaying and fetching that go on in every phase (round-gather.ts). */
  private readonly gathering: RoundGather;
  /** The validate phase (round-validation.ts). */
  private readonly validation: RoundValidation;
  /** The agree phase, and the passing on of manifests that goes on in every phase (round-agreement.ts). */
  private readonly agreement: RoundAgreement;
  private readonly equivocation = new EquivocationDetector();
  /** Peers and this coordinator: whose statements count. */
  private readonly members: PeerDirectory;
  private readonly memberIds: string[];
  private readonly ownPeerId: string;
  private phase: Phase = 'Idle';
  private deadlineMs = 0;
  private book: RoundBook;
  private previousBook: RoundBook | undefined;
  /** Headers for the next round that arrived early, replayed when it starts. */
  private early: Array<{ envelope: Envelope; source: string }> = [];
  /** The base parameters' blob hash (SHA-256 of their bytes) that train tasks name. */
  private baseBlob: Buffer;
  private history: Envelope[] = [];
  private previousBaseHash: Buffer | undefined;
  /** The update applied last round; kept only for a misbehaving coordinator (misbehaviour.ts). */
  private previousUpdate: Float32Array | undefined;
  /**
   * The local checkpoint's write (with its fsync) after the last model change. It runs while the
   * next round trains, off the round's critical path; whatever changes the parameters or the
   * error feedback it is writing waits for it first (checkpointed()).
   */
  private saving: Promise<void> = Promise.resolve();

  constructor(options: RoundDriverOptions) {
    this.options = options;
    this.state = options.state;
    const { compression } = options.settings;
    this.encoder = new SparseLoCoEncoder(this.state.layout.size, { ...compression, ...(options.errorFeedback ? { error: options.errorFeedback.slice() } : {}) });
    this.limiter = new TransferLimiter(options.settings.transfer);
    this.members = new PeerDirectory([...options.peers.list(), { name: options.name, publicKey: options.identity.publicKey }]);
    this.ownPeerId = options.identity.peerId;
    this.memberIds = this.members.list().map((m) => m.peerId).sort();
    this.book = new RoundBook(this.state.round, this.state.hash);
    this.gathering = new RoundGather({
      settings: options.settings, peers: options.peers, members: this.members, memberIds: this.memberIds, reputation: options.reputation,
      limiter: this.limiter, client: (name) => this.client(name), log: options.log, modelLength: this.state.layout.size, codec: this.codec(),
      misbehaviour: options.misbehaviour, serve: (payload) => this.serve(payload),
    });
    this.validation = new RoundValidation({
      runId: options.runId, identity: options.identity, outerLr: options.train.outer.lr, seqLen: options.train.model.seqLen, settings: options.settings, reputation: options.reputation, gateway: options.gateway, metrics: options.metrics,
      log: options.log, members: this.members, memberIds: this.memberIds, ownPeerId: this.ownPeerId, modelLength: this.state.layout.size,
    });
    this.agreement = new RoundAgreement({
      runId: options.runId, identity: options.identity, settings: options.settings, peers: options.peers, members: this.members, memberIds: this.memberIds,
      ownPeerId: this.ownPeerId, reputation: options.reputation, equivocation: this.equivocation, client: (name) => this.client(name), log: options.log,
      metrics: options.metrics, relays: options.misbehaviour?.manifest === undefined, ban: (peerId, detail, evidence, round) => this.ban(peerId, detail, evidence, round),
    });
    this.baseBlob = this.publishBase();
  }

  /** This coordinator's view of its peers: reputation, exclusions, bans with evidence. */
  reputations() {
    return this.options.reputation.snapshot();
  }

  get round(): bigint {
    return this.state.round;
  }

  /** GetStatus's answer. */
  status(): MessageInitShape<typeof PeerStatusSchema> {
    const training = this.phase === 'Training' || this.phase === 'Gathering';
    return { round: this.state.round, modelHash: this.state.hash, phase: this.phase === 'Done' ? 'Idle' : this.phase, trainDeadlineUnixMs: BigInt(training ? this.deadlineMs : 0) };
  }

  /** Round messages are accepted for the previous, current and next round. */
  checkRound(round: bigint): string | undefined {
    const current = this.state.round;
    return round + 1n < current || round > current + 1n ? `round ${round} is outside ${current > 0n ? current - 1n : 0n}..${current + 1n}` : undefined;
  }

  /** Runs rounds until `settings.rounds` are done or `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const { settings, log } = this.options;
    if (this.options.peers.list().length === 0) {
      // A federated run trains with partners: alone it would race ahead of them and could not
      // align later. In Kubernetes the coordinator restarts with its peers once Peers exist.
      log.info('waiting-for-peers', { round: this.state.round });
      await new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
      return;
    }
    await this.options.gateway.waitForTrainers(this.options.trainers ?? 1, 10 * 60_000).catch((error) => log.warn('trainers-missing', { error: String(error) }));
    await this.align(signal, 'start');
    while (this.state.round < BigInt(settings.rounds) && !signal.aborted) {
      let summary: RoundSummary;
      const started = performance.now();
      try {
        summary = await this.runRound(signal);
      } catch (error) {
        if (signal.aborted) break;
        throw error;
      }
      if (signal.aborted) break;
      const { agreed, resynced } = await this.align(signal, 'after');
      summary.agreed = agreed;
      summary.resynced = resynced;
      summary.modelHash = this.state.hash.toString('hex');
      summary.wallSeconds = (performance.now() - started) / 1000;
      this.options.metrics.modelHashAgreement.set(agreed === false ? 0 : 1);
      log.info('round-done', { ...summary, phaseSeconds: summary.phaseSeconds });
      this.options.onRound?.(summary);
    }
    await this.checkpointed();
    this.setPhase('Done');
  }

  // ---- the round ----

  private async runRound(signal: AbortSignal): Promise<RoundSummary> {
    const { settings, metrics, identity, runId } = this.options;
    const book = this.book;
    const round = book.round;
    const phaseSeconds: RoundSummary['phaseSeconds'] = {};
    const timed = async <T>(phase: RoundPhase, work: () => Promise<T>): Promise<T> => {
      const started = performance.now();
      try {
        return await work();
      } finally {
        const seconds = (performance.now() - started) / 1000;
        phaseSeconds[phase] = seconds;
        metrics.phaseDuration.observe({ phase }, seconds);
      }
    };
    metrics.round.set(Number(round));

    // A stopped coordinator stops between phases, as a killed one would: nothing after the stop
    // is applied or written.
    const phase = (next: Phase) => {
      signal.throwIfAborted();
      this.setPhase(next);
    };
    // Train.
    phase('Training');
    const trained = await timed('train', () => this.train(round));

    // Contribute.
    signal.throwIfAborted();
    let own: Contribution | undefined;
    await timed('contribute', async () => {
      if (trained.tokens === 0n) return;
      await this.checkpointed(); // the encoder updates the error feedback the checkpoint holds
      this.options.misbehaviour?.alterDelta?.(trained.delta, { round });
      own = await makeContribution(identity, this.encoder, { runId, round, baseHash: this.state.hash, tokens: trained.tokens, delta: trained.delta });
      // The delta is in the payload and the error feedback now: its buffer serves the aggregate.
      this.options.buffers?.give(trained.delta);
      metrics.tokens.inc(Number(trained.tokens));
      metrics.compressionRatio.set((4 * this.state.layout.size) / own.payload.length);
      if (Number.isFinite(trained.loss)) metrics.loss.set(trained.loss);
      this.history.push(own.statement);
      this.serve(own.payload);
    });

    // Gather.
    phase('Gathering');
    await timed('gather', async () => {
      const { plan, ownAnnounced } = await this.announcementPlan(own, book);
      // This coordinator holds its own header as any other, once it is the one announced (a
      // dishonest plan may announce another, and then the honest one was never sent).
      if (own !== undefined && ownAnnounced) this.offer(book, own.statement, undefined);
      await this.gathering.gather(book, plan, this.deadlineMs, signal);
    });

    // Validate.
    phase('Validating');
    const scores = await timed('validate', () => this.validation.validate(book, this.baseBlob));

    // Agree.
    phase('Agreeing');
    const agreement = await timed('agree', () => this.agree(book, scores, signal));

    // Apply.
    phase('Applying');
    const applied = await timed('apply', () => this.apply(book, agreement));
    metrics.rounds.inc();

    return {
      round, baseHash: book.baseHash.toString('hex'), modelHash: this.state.hash.toString('hex'), agreed: undefined, resynced: false,
      tokens: trained.tokens, loss: trained.loss, contributed: own !== undefined,
      accepted: applied, rejected: [...book.rejections, ...book.stale], scores: Object.fromEntries(scores), evaluations: Object.fromEntries(book.evaluations), votes: this.votesOf(book),
      reputation: Object.fromEntries(this.options.reputation.snapshot().map((p) => [p.peerId, p.reputation])),
      phaseSeconds, ...this.received(book), denseBytes: 4 * this.state.layout.size, wallSeconds: 0,
    };
  }

  private async train(round: bigint) {
    const { gateway, settings, misbehaviour } = this.options;
    const trainers = gateway.trainers().sort((a, b) => a.replica - b.replica).map((t) => t.trainerId);
    const length = this.state.layout.size;
    if (trainers.length === 0) {
      this.options.log.warn('no-trainers', { round });
      await sleep(Math.max(0, this.deadlineMs - Date.now()));
      return { delta: new Float32Array(0), tokens: 0n, trained: [], failed: [], loss: Number.NaN };
    }
    const data = misbehaviour?.trainingData?.({ ownPeerId: this.ownPeerId, peers: this.memberIds, round }) ?? { peerId: this.ownPeerId, peers: this.memberIds };
    const result = await trainRound(gateway, trainers, {
      round, baseHash: this.baseBlob, deadlineUnixMs: this.deadlineMs, runSeed: settings.runSeed,
      peerId: data.peerId, peers: data.peers, length, release: (delta) => this.options.buffers?.give(delta), ...(this.options.maxInnerSteps ? { maxSteps: this.options.maxInnerSteps } : {}),
    });
    for (const failure of result.failed) this.options.log.warn('trainer-failed', { round, ...failure });
    return result;
  }

  /** Per peer name, the statements to announce first; and whether that is this cluster's own header, as an honest one announces. */
  private async announcementPlan(own: Contribution | undefined, book: RoundBook): Promise<{ plan: Map<string, Envelope[]>; ownAnnounced: boolean }> {
    const honest = new Map(this.options.peers.list().map((p) => [p.name, own ? [own.statement] : []]));
    const { misbehaviour } = this.options;
    const plan = misbehaviour?.announce === undefined ? undefined : await misbehaviour.announce(own, this.misbehaviourContext(book));
    return plan === undefined ? { plan: honest, ownAnnounced: true } : { plan, ownAnnounced: false };
  }

  /** This coordinator's votes (its scores times each contributor's Peer weight), then the agreement (round-agreement.ts). */
  private async agree(book: RoundBook, scores: Map<string, number>, signal: AbortSignal): Promise<Agreement> {
    const { misbehaviour } = this.options;
    let entries: AcceptedContribution[] | undefined = book.ready()
      .filter((c) => (scores.get(c.peerId) ?? 0) > 0)
      .map((c) => ({ payloadHash: c.signed.header.payloadHash, contributor: c.signed.signer, scorePpm: scoreToPpm(scores.get(c.peerId)! * (this.options.peerPolicies?.get(c.peerId)?.weight ?? 1)), header: c.signed.envelope }));
    if (misbehaviour?.manifest !== undefined) entries = misbehaviour.manifest(entries, this.misbehaviourContext(book));
    return this.agreement.agree(book, entries, signal);
  }

  /**
   * Aggregates the agreed contributions, one decoded at a time, and takes the outer step. What
   * the majority agreed is applied as agreed — score and tokens from the manifests — even when
   * this coordinator judged it otherwise or never saw its header: it fetches the payload by hash
   * from the peers that hold it.
   */
  private async apply(book: RoundBook, agreement: Agreement): Promise<RoundSummary['accepted']> {
    const length = this.state.layout.size;
    const sources = [];
    for (const agreed of agreement.accepted) {
      const payload = await this.payloadFor(book, agreed.payloadHash);
      if (payload === undefined) {
        // This coordinator will differ from the majority's model and resync after the round.
        this.options.log.warn('agreed-contribution-missing', { round: book.round, peerId: agreed.peerId });
        continue;
      }
      sources.push({ peerId: agreed.peerId, tokens: Number(agreed.tokens), score: agreed.score, load: () => decodePayload(payload, length) });
    }
    let aggregate;
    try {
      aggregate = sources.length > 0 ? await aggregateStreaming(sources, length, this.scratch(), this.weightBounds()) : undefined;
    } catch (error) {
      // A payload the majority accepted does not decode here: apply nothing, resync after.
      this.options.log.error('aggregate-failed', { round: book.round, error: describe(error) });
    }
    this.options.metrics.contributionsAccepted.inc(aggregate === undefined ? 0 : sources.length);
    this.previousBaseHash = this.state.hash;
    await this.checkpointed();
    this.state.step(aggregate?.delta);
    // A dishonest coordinator (tests, the demo) may replay what was applied: it keeps a copy.
    if (this.options.misbehaviour !== undefined) this.previousUpdate = aggregate?.delta.slice();
    if (aggregate !== undefined) this.options.buffers?.give(aggregate.delta);
    this.afterModelChange('apply');
    return (aggregate?.peers ?? []).map((p) => ({ peerId: p.peerId, weight: p.weight, norm: p.norm, clip: p.clip, scorePpm: agreement.accepted.find((a) => a.peerId === p.peerId)!.scorePpm }));
  }

  /** What this coordinator's signed manifest of the round says, by contributor. */
  private votesOf(book: RoundBook): Record<string, number> {
    const own = [...book.manifests.values()].find((m) => m.peerId === this.ownPeerId);
    return Object.fromEntries((own?.manifest.entries ?? []).map((e) => [peerIdOf(Buffer.from(e.contributor)), e.scorePpm]));
  }

  /** A payload by hash: held, or fetched from a peer that announced it or voted for it. */
  private async payloadFor(book: RoundBook, payloadHash: Uint8Array): Promise<Uint8Array | undefined> {
    const held = this.options.payloads.get(payloadHash);
    if (held !== undefined) return held.bytes;
    const commit = [...book.commits.values()].find((c) => Buffer.from(c.signed.header.payloadHash).equals(payloadHash));
    const names = new Set(commit?.sources ?? []);
    for (const m of book.manifests.values()) {
      if (m.peerId === this.ownPeerId) continue;
      if (m.manifest.entries.some((e) => Buffer.from(e.payloadHash).equals(payloadHash))) names.add(this.members.list().find((p) => p.peerId === m.peerId)!.name);
    }
    for (const name of names) {
      try {
        const bytes = await this.limiter.run(name, (pace) => this.client(name).fetchContribution(payloadHash, this.options.settings.maxContributionBytes, pace));
        this.serve(bytes);
        return bytes;
      } catch (error) {
        this.options.log.warn('fetch-failed', { round: book.round, from: name, error: describe(error) });
      }
    }
    return undefined;
  }

  // ---- agreement on (round, hash) and the training deadline ----

  /**
   * Finds the majority's (round, model hash) among the peers' statuses and makes this
   * coordinator's state match: when it is behind or holds a different model, it fetches the
   * majority's checkpoint (from any peer that has it, resuming with another donor if one leaves
   * mid-transfer). Then it adopts the majority's training deadline, or sets its own. Returns
   * whether this coordinator already agreed (undefined: no majority answered in time).
   */
  private async align(signal: AbortSignal, when: 'start' | 'after'): Promise<{ agreed: boolean | undefined; resynced: boolean }> {
    const { settings } = this.options;
    this.setPhase('Syncing');
    const until = Date.now() + (when === 'start' ? Math.min(settings.graceMs, 3000) : settings.graceMs);
    let agreed: boolean | undefined;
    let resynced = false;
    let waitingForNext = false;
    while (!signal.aborted) {
      // A banned member's status does not count: a signer that split the honest clusters by
      // equivocating cannot then make the side it chose the majority.
      const banned = (peerId: string) => this.options.reputation.banOf(peerId) !== undefined;
      const statuses = (await this.statuses()).filter((s) => !banned(s.peerId));
      const own = { round: this.state.round, hash: this.state.hash };
      const alignment = alignmentOf(statuses, own, this.memberIds.filter((id) => !banned(id)).length, Date.now(), Date.now() >= until);
      if (alignment.verdict === 'behind' && isAhead(alignment.group, own)) {
        const { group } = alignment;
        if (when === 'after' && group.round === this.state.round) agreed = false;
        if (await this.resync(group.hash, group.peers, signal)) resynced = true;
        continue;
      }
      if (alignment.verdict === 'in-step') {
        const { group } = alignment;
        agreed ??= true;
        if (when === 'after' && this.state.round >= BigInt(settings.rounds)) break;
        if (!canJoin(group, Date.now(), 0.1 * settings.windowMs)) {
          // The majority is too far into this round to join it: wait for the next one.
          if (!waitingForNext) this.options.log.info('waiting-for-next-round', { round: this.state.round });
          waitingForNext = true;
          await sleep(POLL_MS * 2, signal).catch(() => undefined);
          continue;
        }
        const deadline = medianDeadline(group);
        this.deadlineMs = deadline !== undefined ? Math.min(deadline, Date.now() + settings.windowMs) : Date.now() + settings.windowMs;
        break;
      }
      if (Date.now() >= until && !waitingForNext) {
        // No majority answered, or it is still finishing the previous round: go on alone.
        this.deadlineMs = Date.now() + settings.windowMs;
        break;
      }
      await sleep(POLL_MS, signal).catch(() => undefined);
    }
    this.startBook();
    return { agreed, resynced };
  }

  private async statuses(): Promise<Array<PeerState & { peerId: string }>> {
    const out: Array<PeerState & { peerId: string }> = [];
    await Promise.all(this.options.peers.list().map(async (peer) => {
      try {
        const { status } = await this.client(peer.name).status('align');
        out.push({ peer: peer.name, peerId: peer.peerId, round: status.round, modelHash: status.modelHash, phase: status.phase, trainDeadlineUnixMs: Number(status.trainDeadlineUnixMs) });
      } catch {
        // Unreachable now; it is simply not counted.
      }
    }));
    return out;
  }

  /** Fetches the shared checkpoint `hash` from `donors` in turn and adopts it. */
  private async resync(hash: Buffer, donors: string[], signal: AbortSignal): Promise<boolean> {
    const { log, settings } = this.options;
    log.info('resync-start', { round: this.state.round, to: hash.toString('hex').slice(0, 16), donors });
    const partial: PartialTransfer = { buffer: undefined, received: 0 };
    const maxBytes = 4 * 2 * this.state.layout.size + 1024 * 1024;
    for (const donor of donors) {
      if (signal.aborted) return false;
      try {
        const bytes = await this.limiter.run(donor, (pace) => this.client(donor).fetchCheckpoint(hash, partial, maxBytes, pace), signal);
        await this.checkpointed();
        this.state.adopt(bytes, hash);
        this.previousBaseHash = undefined;
        this.afterModelChange('resync');
        log.info('resync-done', { round: this.state.round, hash: hash.toString('hex').slice(0, 16), from: donor });
        return true;
      } catch (error) {
        log.warn('resync-failed', { from: donor, received: partial.received, error: describe(error) });
        // Bytes that arrived are kept: the next donor continues from there. A bad file as a
        // whole (wrong hash) starts over.
        if (partial.buffer !== undefined && partial.received === partial.buffer.length) Object.assign(partial, { buffer: undefined, received: 0 });
      }
    }
    await sleep(Math.min(1000, settings.graceMs), signal).catch(() => undefined);
    return false;
  }

  // ---- inbound round messages (RoundHandlers) ----

  announced(statements: readonly Envelope[], from: RoundMessageSource): Uint8Array[] {
    const wanted: Uint8Array[] = [];
    const book = this.book;
    const held = book.commits.size;
    for (const envelope of statements) {
      const commit = this.offer(book, envelope, from.peerName);
      if (commit !== undefined && commit.payload === undefined) {
        wanted.push(commit.signed.header.payloadHash);
        void this.gathering.fetch(book, commit);
      }
    }
    // Relay on receipt, whatever the phase: a header one honest coordinator holds reaches every
    // other before anyone decides, so nobody can announce to a chosen few (docs/protocol.md).
    if (book.commits.size > held) this.gathering.relay(book);
    return wanted;
  }

  manifestReceived(manifest: RelayedManifest, from: RoundMessageSource): RelayedManifest[] {
    const book = this.previousBook !== undefined && from.round === this.previousBook.round ? this.previousBook : this.book;
    if (from.round !== book.round) return [];
    this.agreement.accept(book, manifest, from.peerName);
    return this.agreement.held(book);
  }

  /**
   * Checks one contribution statement for `book`'s round and records it; returns the commit
   * when it is a valid header of the round (new or already held).
   */
  private offer(book: RoundBook, envelope: Envelope, source: string | undefined): Commit | undefined {
    const check = checkContributionHeader(envelope, {
      runId: this.options.runId, round: book.round, baseHash: book.baseHash,
      // A claimed size is checked against what the codec can produce for this model, not only
      // the run's limit: a signer cannot claim room to trickle in.
      maxPayloadBytes: Math.min(this.options.settings.maxContributionBytes, this.largestPayload()), keyFor: this.members.keyFor,
      ...(this.options.settings.claims.maxTokensPerRound !== undefined ? { maxTokens: BigInt(this.options.settings.claims.maxTokensPerRound) } : {}),
    });
    const signed = check.ok ? check : check.signed;
    if (signed === undefined) {
      // Unverifiable: possibly a relay's fault, never the signer's.
      this.options.log.warn('statement-refused', { round: book.round, from: source, reason: check.ok ? undefined : check.reason });
      return undefined;
    }
    const peerId = this.members.get(signed.signer)!.peerId;
    if (!check.ok && check.reason === RejectionReason.WrongRound && signed.header.round > book.round) {
      // Ahead of this coordinator, not a replay: keep the next round's for when it starts.
      if (signed.header.round === book.round + 1n && source !== undefined && this.early.length < 4 * this.memberIds.length) this.early.push({ envelope, source });
      return undefined;
    }
    if (!check.ok && check.reason === RejectionReason.WrongRound) {
      book.noteStale(peerId, check.reason, check.detail);
      return undefined;
    }
    if (signed.header.round === book.round) {
      const equivocation = this.equivocation.record(envelope);
      if (!equivocation.ok && equivocation.reason === RejectionReason.Equivocation) {
        this.ban(peerId, equivocation.detail, equivocation.evidence, book.round);
        book.equivocations.set(peerId, equivocation.evidence);
        book.reject(peerId, RejectionReason.Equivocation, equivocation.detail);
        return undefined;
      }
    }
    if (!check.ok) {
      book.reject(peerId, check.reason, check.detail);
      return undefined;
    }
    if (book.rejected(peerId)) return undefined;
    const policy = this.policyRefusal(peerId, check.header.payloadBytes);
    if (policy !== undefined) {
      book.reject(peerId, RejectionReason.PeerPolicy, policy);
      return undefined;
    }
    const { commit } = book.commit(check, peerId, source);
    // A header that says the same as the one held, re-encoded, is the same commitment.
    if (!commit.signed.hash.equals(check.hash)) return undefined;
    if (source === undefined && commit.payload === undefined) {
      const payload = this.options.payloads.get(check.header.payloadHash);
      if (payload !== undefined) {
        const checked = checkPayload(check.header, payload.bytes, this.state.layout.size, this.codec());
        if (checked.ok) {
          commit.payload = payload.bytes;
          commit.norm = checked.norm;
        }
      }
    }
    return commit;
  }

  /** Why this cluster's Peer settings keep it from voting for a contribution, or undefined. */
  private policyRefusal(peerId: string, payloadBytes: bigint): string | undefined {
    const policy = this.options.peerPolicies?.get(peerId);
    if (policy === undefined) return undefined;
    if (policy.weight === 0) return 'this cluster gives the peer weight 0';
    if (policy.maxContributionBytes !== undefined && payloadBytes > BigInt(policy.maxContributionBytes)) {
      return `payload of ${payloadBytes} bytes is above this cluster's limit for the peer, ${policy.maxContributionBytes}`;
    }
    return undefined;
  }

  private ban(peerId: string, detail: string, evidence: readonly Envelope[], round: bigint): void {
    const { reputation, log } = this.options;
    if (reputation.banOf(peerId) !== undefined) return;
    reputation.ban(peerId, { reason: RejectionReason.Equivocation, detail, round: Number(round), evidence: encodeEvidence(evidence) });
    log.warn('peer-banned', { peerId, reason: RejectionReason.Equivocation, detail, round });
  }

  // ---- state ----

  /** Starts the book of the round the coordinator is now at, whose training deadline is set. */
  private startBook(): void {
    if (this.book.round === this.state.round && this.book.baseHash.equals(this.state.hash)) {
      this.book.trainDeadlineMs ??= this.deadlineMs;
      return;
    }
    this.previousBook = this.book;
    this.book = new RoundBook(this.state.round, this.state.hash);
    this.book.trainDeadlineMs = this.deadlineMs;
    this.equivocation.forgetBefore(this.state.round > 2n ? this.state.round - 2n : 0n);
    const early = this.early;
    this.early = [];
    for (const { envelope, source } of early) {
      const commit = this.offer(this.book, envelope, source);
      if (commit !== undefined) void this.gathering.fetch(this.book, commit);
    }
    if (this.book.commits.size > 0) this.gathering.relay(this.book);
    // Payloads of the previous round stay served (a slower peer may still fetch them to apply).
    const keep = [this.book, this.previousBook].flatMap((b) => [...b.commits.values()].map((c) => c.signed.header.payloadHash));
    this.options.payloads.retain(keep);
    this.options.trainerBlobs.retain([this.baseBlob, ...keep]);
  }

  /** Publishes the current parameters to trainers and peers, and starts writing the local
   * checkpoint (see `saving`). */
  private afterModelChange(cause: 'apply' | 'resync'): void {
    this.baseBlob = this.publishBase();
    const { checkpointDir, checkpointEveryRounds = 1 } = this.options;
    if (checkpointDir === undefined) return;
    // A resynced model is written whatever its round: the checkpoint on disk is now behind the
    // majority's, and resuming from it would mean fetching the whole model again.
    if (cause === 'apply' && this.state.round % BigInt(checkpointEveryRounds) !== 0n) return;
    const extras = { errorFeedback: this.encoder.error, reputation: this.options.reputation.snapshot() };
    const round = this.state.round;
    const write = this.state.save(checkpointDir, extras).then(() => this.options.log.info('checkpointed', { round }));
    write.catch(() => undefined); // reported where it is awaited, not as an unhandled rejection
    this.saving = write;
  }

  /** Waits for the checkpoint write in flight; a failed write fails the caller, as it did inline. */
  private async checkpointed(): Promise<void> {
    await this.saving;
  }

  /**
   * Serves the shared checkpoint of the current model to peers (FetchCheckpoint, by model hash)
   * and its parameter bytes to trainers (FetchBlob, by SHA-256): one buffer for both.
   */
  private publishBase(): Buffer {
    const { file, params } = this.state.sharedCheckpoint();
    // The old base is no longer served: its round's train and evaluate tasks are over.
    const previous = this.baseBlob as Buffer | undefined;
    if (previous !== undefined) this.options.trainerBlobs.delete(previous);
    this.options.checkpoints.retain([]);
    this.options.checkpoints.set(this.state.hash, file, false);
    return this.options.trainerBlobs.put(params, false);
  }

  private serve(payload: Uint8Array): void {
    this.options.payloads.put(payload);
    this.options.trainerBlobs.put(payload);
  }

  /** A model-sized float32 buffer for the aggregate: from the pool the uploads come from. */
  private scratch(): Float32Array {
    const bytes = this.options.buffers?.take() ?? new Uint8Array(4 * this.state.layout.size);
    return new Float32Array(bytes.buffer, bytes.byteOffset, this.state.layout.size);
  }

  /** The largest payload the run's codec can produce for this model, in bytes. */
  private largestPayload(): number {
    const codec = this.codec();
    return maxPayloadBytes(this.state.layout.size, codec, riceParameter(codec.chunk, codec.k));
  }

  /** The run's bounds on claims, as the aggregate takes them. */
  private weightBounds(): WeightBounds {
    const { maxTokensPerRound, relativeTokenCap, maxShare } = this.options.settings.claims;
    return { relativeTokenCap, maxShare, ...(maxTokensPerRound !== undefined ? { maxTokens: maxTokensPerRound } : {}) };
  }

  private codec() {
    const { chunk, k, bits } = this.options.settings.compression;
    return { chunk, k, bits };
  }

  private client(name: string): PeerClient {
    const client = this.options.clients.get(name);
    if (client === undefined) throw new Error(`no client for peer ${name}`);
    return client;
  }

  /** Payloads of the round that came from peers (not this coordinator's own). */
  private received(book: RoundBook): { payloadsReceived: number; payloadBytes: number } {
    // Others' payloads only: this coordinator's own is in the book from the start, never received.
    const fetched = [...book.commits.values()].filter((c) => c.payload !== undefined && c.sources.size > 0 && c.peerId !== this.ownPeerId);
    return { payloadsReceived: fetched.length, payloadBytes: fetched.reduce((sum, c) => sum + c.payload!.length, 0) };
  }

  private setPhase(phase: Phase): void {
    this.phase = phase;
    this.options.onPhase?.(phase, this.state.round);
  }

  private misbehaviourContext(book: RoundBook): MisbehaviourContext {
    return {
      identity: this.options.identity, runId: this.options.runId, round: book.round, baseHash: book.baseHash, modelLength: this.state.layout.size,
      previousBaseHash: this.previousBaseHash, previousUpdate: this.previousUpdate, peers: this.options.peers.list(), payloads: this.options.payloads, book,
      history: this.history,
      waitForOthers: async (timeoutMs) => {
        const until = Date.now() + timeoutMs;
        while (Date.now() < until && !book.ready().some((c) => c.peerId !== this.ownPeerId)) await sleep(POLL_MS);
      },
    };
  }
}

