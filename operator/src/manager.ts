// The controller manager: caches (informers) for what the operator reads, the TrainingRun and
// Peer controllers, leader election (only the leader reconciles; every instance keeps its cache
// warm, so a new leader starts at once), and /healthz, /readyz, /metrics.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { KubeConfig, KubernetesObject } from '@kubernetes/client-node';
import { Registry } from 'prom-client';
import type { Peer, TrainingRun } from './api/types.js';
import { ClusterCache } from './controllers/cache.js';
import { PeerReconciler } from './controllers/peer/reconciler.js';
import { ReportBook, clusterDnsAddress, type CoordinatorAddress } from './controllers/reports.js';
import type { Images } from './controllers/trainingrun/builders.js';
import { FIELD_MANAGER } from './controllers/trainingrun/names.js';
import { TrainingRunReconciler } from './controllers/trainingrun/reconciler.js';
import type { Logger } from './log.js';
import { createOperatorMetrics, type OperatorMetrics } from './metrics/operator.js';
import { serveMetrics, type MetricsServer } from './metrics/serve.js';
import { Controller } from './runtime/controller.js';
import { EventRecorder } from './runtime/events.js';
import { Applier } from './runtime/kube.js';
import { LeaderElector } from './runtime/leader-election.js';

export interface OperatorOptions {
  config: KubeConfig;
  images: Images;
  log: Logger;
  /** Watch one namespace only (default: all). */
  namespace?: string;
  /** Reconcile workers per controller. */
  workers?: number;
  /** How often a running run's coordinator is asked for its report. */
  pollMs?: number;
  /** Where /healthz, /readyz and /metrics are served; none when absent. */
  healthListen?: { host: string; port: number };
  /** Lease-based leader election; off when absent (a single instance). */
  leaderElection?: { namespace: string; name: string; identity?: string; leaseDurationMs?: number; renewDeadlineMs?: number; retryPeriodMs?: number };
  coordinatorAddress?: CoordinatorAddress;
  /** Retry backoff of failed reconciles (and informer restarts), for tests. */
  retry?: { baseDelayMs?: number; maxDelayMs?: number };
}

export class Operator {
  readonly registry = new Registry();
  readonly metrics: OperatorMetrics;
  readonly cache: ClusterCache;
  readonly runs: Controller;
  readonly peers: Controller;
  readonly reports: ReportBook;
  private readonly elector: LeaderElector | undefined;
  private readonly stopping = new AbortController();
  private health: MetricsServer | undefined;
  private synced = false;
  private running: Promise<void> | undefined;

  constructor(private readonly options: OperatorOptions) {
    const { config, log } = options;
    this.metrics = createOperatorMetrics(this.registry, ['trainingrun', 'peer']);
    this.reports = new ReportBook(options.coordinatorAddress ?? clusterDnsAddress);
    const events = new EventRecorder(config, FIELD_MANAGER, log);
    this.cache = new ClusterCache(config, {
      run: (_event, run) => this.runs.queue.add(keyOf(run)),
      peer: (_event, peer) => this.enqueuePeer(peer),
      child: (_event, child) => this.enqueueOwner(child),
    }, {
      ...(options.namespace !== undefined ? { namespace: options.namespace } : {}),
      ...(options.retry?.maxDelayMs !== undefined ? { maxRetryDelayMs: options.retry.maxDelayMs } : {}),
      onError: (kind, error, retryInMs) => log.warn('watch-failed', { kind, retryInMs, error: error instanceof Error ? error.message : String(error) }),
    });
    const runs = new TrainingRunReconciler({
      config, cache: this.cache, applier: new Applier(config, FIELD_MANAGER), events, reports: this.reports, images: options.images, log,
      pollMs: options.pollMs ?? 10_000, onPeers: (keys) => keys.forEach((key) => this.peers.queue.add(key)),
    });
    const peers = new PeerReconciler({ config, cache: this.cache, reports: this.reports, events });
    this.runs = new Controller('trainingrun', runs.reconcile, this.metrics, log, options.retry ?? {});
    this.peers = new Controller('peer', peers.reconcile, this.metrics, log, options.retry ?? {});
    const election = options.leaderElection;
    this.elector = election === undefined ? undefined : new LeaderElector(config, {
      ...election, identity: election.identity ?? `${hostname()}-${randomBytes(4).toString('hex')}`,
      log: (event, fields) => log.info(event, fields),
    });
  }

  get isLeader(): boolean {
    return this.elector === undefined ? this.running !== undefined : this.elector.isLeader;
  }

  /** Serves health and metrics, fills the caches, then (once leader) reconciles until stop(). */
  async start(): Promise<void> {
    const { healthListen, log } = this.options;
    if (healthListen !== undefined) {
      this.health = await serveMetrics(this.registry, healthListen.host, healthListen.port, {
        '/readyz': () => (this.synced ? { status: 200, body: 'ok\n' } : { status: 503, body: 'caches not synced\n' }),
      });
      log.info('health', { address: `http://${this.health.address}` });
    }
    await this.cache.start(this.stopping.signal);
    this.synced = true;
    log.info('caches-synced');
    const workers = this.options.workers ?? 4;
    const reconcile = async (lost: AbortSignal) => {
      this.metrics.leader.set(1);
      const shutDown = () => {
        this.runs.queue.shutDown();
        this.peers.queue.shutDown();
      };
      lost.addEventListener('abort', shutDown, { once: true });
      await Promise.all([this.runs.run(workers), this.peers.run(workers)]);
      this.metrics.leader.set(0);
    };
    this.running = this.elector === undefined
      ? reconcile(this.stopping.signal)
      : this.elector.run(this.stopping.signal, reconcile);
  }

  /** Resolves when the controllers stopped: after stop(), or when leadership was lost. */
  async done(): Promise<void> {
    await this.running;
  }

  /** Graceful shutdown: running reconciles finish, the lease is released, watches close. */
  async stop(): Promise<void> {
    this.stopping.abort();
    this.runs.queue.shutDown();
    this.peers.queue.shutDown();
    await this.running;
    await this.cache.stop();
    await this.health?.close();
  }

  private enqueuePeer(peer: Peer): void {
    this.peers.queue.add(keyOf(peer));
    if (peer.spec?.runRef?.name !== undefined) this.runs.queue.add(`${peer.metadata.namespace}/${peer.spec.runRef.name}`);
  }

  private enqueueOwner(child: KubernetesObject): void {
    const owner = child.metadata?.ownerReferences?.find((ref) => ref.controller && ref.kind === 'TrainingRun');
    if (owner !== undefined) this.runs.queue.add(`${child.metadata!.namespace}/${owner.name}`);
  }
}

function keyOf(object: TrainingRun | Peer): string {
  return `${object.metadata.namespace}/${object.metadata.name}`;
}
