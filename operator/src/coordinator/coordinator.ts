import { Registry } from 'prom-client';
import type { TrainConfig } from '../../../trainer/src/train/config.js';
import { MemoryBlobStore } from '../federation/blob-store.js';
import { PeerClient } from '../federation/client.js';
import type { Identity } from '../federation/identity.js';
import { PeerDirectory } from '../federation/peers.js';
import { FederationServer } from '../federation/server.js';
import type { Logger } from '../log.js';
import { createFederationMetrics, type FederationMetrics } from '../metrics/federation.js';
import { createRoundMetrics, type RoundMetrics } from '../metrics/rounds.js';
import { Reputation } from '../rounds/reputation.js';
import type { PeerConfig } from './config.js';
import type { Misbehaviour } from './misbehaviour.js';
import { ModelState } from './model-state.js';
import { RoundDriver, type Phase, type RoundSummary } from './round-driver.js';
import type { RoundSettings } from './round-settings.js';
import { TrainerGateway } from './trainer-gateway.js';
import { BufferPool } from './buffer-pool.js';
import { buildReport, ContributionTally, type CoordinatorReport } from './report.js';
import { sleep } from '../runtime/backoff.js';

/** Everything a coordinator runs from: its config file, or a test's setup. */
export interface CoordinatorSetup {
  /** A name for logs and metrics: the cluster. */
  name: string;
  runId: string;
  identity: Identity;
  /** The federation endpoint (other clusters) and the trainer endpoint (this cluster's pods). */
  listen: { host: string; port: number };
  trainerListen: { host: string; port: number };
  peers: PeerConfig[];
  settings: RoundSettings;
  train: TrainConfig;
  /** Trainers to wait for before the first round. */
  trainers: number;
  /** The run's volume: the local checkpoint is written here after each round and resumed from. */
  checkpointDir?: string;
  /** Write it only after rounds whose number is a multiple of this (default 1: every round). */
  checkpointEveryRounds?: number;
  maxInnerSteps?: number;
  misbehaviour?: Misbehaviour;
  log: Logger;
  onRound?: (summary: RoundSummary) => void;
  onPhase?: (phase: Phase, round: bigint) => void;
}

/**
 * A cluster's federation endpoint for one run: serves the other clusters (FederationService) and
 * its own trainers (TrainerService), and drives the outer rounds (round-driver.ts).
 */
export class Coordinator {
  readonly registry = new Registry();
  readonly metrics: FederationMetrics;
  readonly roundMetrics: RoundMetrics;
  readonly gateway: TrainerGateway;
  private readonly server: FederationServer;
  private readonly clients = new Map<string, PeerClient>();
  private driver: RoundDriver | undefined;
  private readonly payloads = new MemoryBlobStore();
  private readonly checkpoints = new MemoryBlobStore();
  private readonly trainerBlobs = new MemoryBlobStore();
  private readonly peers: PeerDirectory;
  /** Uploaded deltas and the aggregate share these model-sized buffers. */
  private readonly buffers: BufferPool;
  private readonly tally = new ContributionTally();
  private readonly probing = new AbortController();
  private state: ModelState;
  /** Set by start(): the ports actually bound. */
  address = '';
  trainerAddress = '';

  constructor(private readonly setup: CoordinatorSetup) {
    this.metrics = createFederationMetrics(this.registry);
    this.roundMetrics = createRoundMetrics(this.registry);
    this.peers = new PeerDirectory(setup.peers);
    this.state = ModelState.initial(setup.runId, setup.train.model, setup.train.outer, setup.settings.runSeed);
    this.buffers = new BufferPool(4 * this.state.layout.size);
    this.gateway = new TrainerGateway({
      paramCount: this.state.layout.size, blobs: this.trainerBlobs, deltaBuffers: this.buffers,
      // 1 MiB chunks: a model-sized transfer leaves less in flight and less garbage per message.
      chunkBytes: 1024 * 1024,
      onTrainer: (event, trainer, detail) => setup.log.info(`trainer-${event}`, { trainerId: trainer.trainerId, device: trainer.device, detail }),
    });
    // The dataset the run pins, bound into every handshake (empty: the bundled corpus).
    const datasetHash = setup.train.data.hash === undefined ? undefined : Buffer.from(setup.train.data.hash, 'hex');
    for (const peer of setup.peers) {
      this.clients.set(peer.name, new PeerClient({
        identity: setup.identity, runId: setup.runId, address: peer.endpoint, serverKey: peer.publicKey, ...(datasetHash ? { datasetHash } : {}),
        metrics: this.metrics, round: () => this.driver?.round ?? 0n, grpc: { unaryTimeoutMs: 5_000 },
      }));
    }
    this.server = new FederationServer({
      identity: setup.identity,
      runId: setup.runId,
      ...(datasetHash ? { handshake: { datasetHash } } : {}),
      peers: this.peers,
      metrics: this.metrics,
      status: () => this.driver?.status() ?? { round: this.state.round, modelHash: this.state.hash, phase: 'Idle' },
      checkRound: (round) => this.driver?.checkRound(round),
      contributions: this.payloads,
      checkpoints: this.checkpoints,
      rounds: {
        announced: (statements, from) => this.requireDriver().announced(statements, from),
        manifestReceived: (manifest, from) => this.requireDriver().manifestReceived(manifest, from),
      },
      onRefused: (reason, detail, method) => setup.log.warn('message-refused', { reason, detail, method }),
    });
  }

  /** Resumes from the local checkpoint if there is one, then starts both endpoints. */
  async start(): Promise<void> {
    const { setup } = this;
    const reputationOptions = { floor: setup.settings.validation.reputationFloor };
    let reputation = new Reputation(reputationOptions);
    let errorFeedback: Float32Array | undefined;
    if (setup.checkpointDir !== undefined) {
      const resumed = await ModelState.load(setup.checkpointDir, setup.runId, setup.train.model, setup.train.outer);
      if (resumed !== undefined) {
        this.state = resumed.state;
        reputation = Reputation.fromSnapshot(resumed.extras.reputation, reputationOptions);
        errorFeedback = resumed.extras.errorFeedback;
        setup.log.info('resumed', { round: this.state.round, modelHash: this.state.hash.toString('hex') });
      }
    }
    this.driver = new RoundDriver({
      name: setup.name, runId: setup.runId, identity: setup.identity, peers: this.peers, clients: this.clients,
      peerPolicies: new Map(setup.peers.map((peer) => [this.peers.get(peer.publicKey)!.peerId, {
        weight: peer.weight ?? 1, ...(peer.maxContributionBytes !== undefined ? { maxContributionBytes: peer.maxContributionBytes } : {}),
      }])),
      settings: setup.settings, train: setup.train, gateway: this.gateway, trainerBlobs: this.trainerBlobs,
      payloads: this.payloads, checkpoints: this.checkpoints, state: this.state, reputation,
      metrics: this.roundMetrics, log: setup.log, trainers: setup.trainers, buffers: this.buffers,
      ...(errorFeedback ? { errorFeedback } : {}),
      ...(setup.checkpointDir !== undefined ? { checkpointDir: setup.checkpointDir } : {}),
      ...(setup.checkpointEveryRounds !== undefined ? { checkpointEveryRounds: setup.checkpointEveryRounds } : {}),
      ...(setup.maxInnerSteps !== undefined ? { maxInnerSteps: setup.maxInnerSteps } : {}),
      ...(setup.misbehaviour ? { misbehaviour: setup.misbehaviour } : {}),
      onRound: (summary) => {
        this.tally.record(summary);
        setup.onRound?.(summary);
      },
      ...(setup.onPhase ? { onPhase: setup.onPhase } : {}),
    });
    const bound = await this.server.listen(setup.listen.host, setup.listen.port);
    this.address = `${setup.listen.host}:${bound}`;
    const trainerPort = await this.gateway.listen(setup.trainerListen.host, setup.trainerListen.port);
    this.trainerAddress = `${setup.trainerListen.host}:${trainerPort}`;
    setup.log.info('listening', {
      address: this.address, trainerAddress: this.trainerAddress, runId: setup.runId, peerId: setup.identity.peerId,
      publicKey: setup.identity.publicKey.toString('base64'), round: this.state.round,
    });
  }

  /**
   * Checks every peer that has not answered for `intervalMs` with a status call, so that the link
   * state in the report (reachable, verified, round trip) is fresh also between rounds and before
   * the first one. Runs until stop().
   */
  async probePeers(intervalMs = 15_000): Promise<void> {
    const signal = this.probing.signal;
    while (!signal.aborted) {
      await Promise.all([...this.clients.values()].map(async (client) => {
        const { lastSeenMs } = client.link();
        if (lastSeenMs !== undefined && Date.now() - lastSeenMs < intervalMs) return;
        await client.status('probe').catch(() => undefined);
      }));
      await sleep(intervalMs, signal).catch(() => undefined);
    }
  }

  /** The status report served on GET /status (operator/src/coordinator/report.ts). */
  report(): CoordinatorReport {
    const { setup } = this;
    return buildReport({
      runId: setup.runId, peerId: setup.identity.peerId, publicKey: setup.identity.publicKey.toString('base64'),
      phase: this.driver?.status().phase ?? 'Idle', round: this.state.round, rounds: setup.settings.rounds,
      modelHash: this.state.hash.toString('hex'), trainers: this.gateway.trainers().length, tally: this.tally,
      peers: setup.peers.map((peer) => ({ name: peer.name, peerId: this.peers.get(peer.publicKey)!.peerId, link: this.clients.get(peer.name)!.link() })),
      reputations: this.driver?.reputations() ?? [],
    });
  }

  /** Runs the rounds; resolves when the configured rounds are done or `signal` aborts. */
  run(signal: AbortSignal): Promise<void> {
    return this.requireDriver().run(signal);
  }

  /** The model as it stands (for tests and the local demo's report). */
  model(): { round: bigint; hash: string; params: Float32Array } {
    return { round: this.state.round, hash: this.state.hash.toString('hex'), params: this.state.params };
  }

  /** Reputation, exclusions and bans (with evidence) of the run's peers, as this coordinator sees them. */
  reputations() {
    return this.requireDriver().reputations();
  }

  /** Stops serving: lets running calls finish for up to `graceMs` (0: cuts them, as a crash would). */
  async stop(graceMs = 500): Promise<void> {
    this.probing.abort();
    for (const client of this.clients.values()) client.close();
    await Promise.all([this.server.close(graceMs), this.gateway.close(graceMs)]);
  }

  private requireDriver(): RoundDriver {
    if (this.driver === undefined) throw new Error('the coordinator has not started');
    return this.driver;
  }
}
