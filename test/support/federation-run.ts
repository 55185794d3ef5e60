// Several clusters in one process, as the adversarial and fault suites use them: each a real
// Coordinator (its own identity, federation endpoint and trainer endpoint on loopback) with one
// real trainer agent (a TrainerThread running ORT on a worker thread). They talk over real gRPC
// with real signatures; only the process is shared.
import { Coordinator } from '../../operator/src/coordinator/coordinator.js';
import type { Misbehaviour } from '../../operator/src/coordinator/misbehaviour.js';
import type { RoundSummary } from '../../operator/src/coordinator/round-driver.js';
import { DEFAULT_ROUND_SETTINGS, type RoundSettings } from '../../operator/src/coordinator/round-settings.js';
import { generateIdentity, type Identity } from '../../operator/src/federation/identity.js';
import type { Logger } from '../../operator/src/log.js';
import { freePort } from '../../operator/src/runtime/free-port.js';
import { countsOf } from '../../operator/src/metrics/read.js';
import { runTrainerAgent } from '../../trainer/src/agent/trainer-agent.js';
import { TrainerThread } from '../../trainer/src/engine/trainer-thread.js';
import { parseTrainConfig, type TrainConfig } from '../../trainer/src/train/config.js';
import { federationRunMs, TRAINERS_JOIN_MS } from './deadlines.js';
import { withDeadline } from './wait.js';

export const RUN = 'test/federation';

/** A tiny GPT that trains in a fraction of a second per step on one core. */
export const TINY_TRAIN: TrainConfig = parseTrainConfig({
  seed: 3, model: { vocabSize: 512, seqLen: 32, layers: 1, dModel: 32, heads: 2 },
  inner: { batch: 4, lr: 0.01, warmupSteps: 2 }, train: { steps: 100_000, minutes: 60, threads: 1, device: 'cpu', evalBatches: 4 },
  outer: { kind: 'sgd', lr: 1 },
});

export function tinySettings(overrides: Partial<RoundSettings> = {}): RoundSettings {
  return {
    ...DEFAULT_ROUND_SETTINGS,
    runSeed: 11n, rounds: 3, windowMs: 4000, graceMs: 3000, deliveryBoundMs: 1000,
    compression: { chunk: 1024, k: 32, bits: 2, errorDecay: 0.95 },
    validation: { batches: 2, harm: 3, help: 2, relative: 0.4, sample: undefined, reputationFloor: 0.3 },
    ...overrides,
  };
}

export interface ClusterSpec {
  name: string;
  misbehaviour?: Misbehaviour;
  /** Whether the cluster counts as honest in the result (default: no misbehaviour). */
  honest?: boolean;
  /** This cluster's Peer settings for others, by their names (Peer spec.weight, spec.maxContributionBytes). */
  peerSettings?: Record<string, { weight?: number; maxContributionBytes?: number }>;
}

export interface ClusterHandle {
  spec: ClusterSpec;
  identity: Identity;
  coordinator: Coordinator;
  summaries: RoundSummary[];
  /** Whole-run log lines with event and fields, for assertions on what happened. */
  events: Array<{ event: string; fields: Record<string, unknown> }>;
  leave: AbortController;
  trainer: Promise<void>;
  running: Promise<void> | undefined;
  /** What its rounds threw, if they did (an attacker that crashed made no attack). */
  failure?: unknown;
  stop: AbortController;
}

export interface Federation {
  clusters: ClusterHandle[];
  /**
   * Kills a cluster as `kill -9` would: its rounds stop where they are, its endpoints drop every
   * call at once and its trainer goes away; nothing is saved beyond what was already on disk.
   */
  crash(name: string): Promise<void>;
  /** Starts a crashed cluster again (same identity, ports and checkpoint directory) and its rounds. */
  restart(name: string): Promise<ClusterHandle>;
  /** Starts every coordinator's rounds (or those named). */
  run(names?: string[]): void;
  /**
   * Resolves when the named (default: honest) clusters have finished all rounds; fails after
   * `timeoutMs` (default: federationRunMs of the settings' rounds, test/support/deadlines.ts).
   */
  finished(names?: string[], timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

function recorder(events: ClusterHandle['events'], recorded: () => void): Logger {
  const push = (event: string, fields: Record<string, unknown> = {}) => {
    events.push({ event, fields });
    recorded();
  };
  return { info: push, warn: push, error: push };
}

/** What one cluster has recorded so far (see FederationOptions.onRecord). */
export interface ClusterRecord {
  name: string;
  events: ClusterHandle['events'];
  summaries: RoundSummary[];
}

export interface FederationOptions {
  settings: RoundSettings;
  train?: TrainConfig;
  maxInnerSteps?: number;
  checkpointDirs?: Record<string, string>;
  /** Every cluster with a checkpoint directory writes only after rounds that are multiples of this. */
  checkpointEveryRounds?: number;
  /**
   * Called synchronously each time a cluster records a log line or a round summary, from inside
   * the coordinator's own call: a test can act at an exact point of a run (crash a cluster the
   * moment an event happens) instead of polling for it and acting some time later.
   */
  onRecord?: (record: ClusterRecord) => void;
  /** The clusters' keys, by position (default: fresh ones): two runs with the same keys train on the same data. */
  identities?: Identity[];
}

/** Starts the clusters' coordinators and trainers (not their rounds: call `run`). */
export async function startFederation(specs: ClusterSpec[], options: FederationOptions): Promise<Federation> {
  const train = options.train ?? TINY_TRAIN;
  const identities = options.identities ?? specs.map(() => generateIdentity());
  const ports = await Promise.all(specs.map(() => freePort()));
  const clusters: ClusterHandle[] = [];
  const startCluster = async (i: number): Promise<ClusterHandle> => {
    const spec = specs[i]!;
    const events: ClusterHandle['events'] = [];
    const summaries: RoundSummary[] = [];
    const recorded = () => options.onRecord?.({ name: spec.name, events, summaries });
    const coordinator = new Coordinator({
      name: spec.name, runId: RUN, identity: identities[i]!,
      listen: { host: '127.0.0.1', port: ports[i]! }, trainerListen: { host: '127.0.0.1', port: 0 },
      peers: specs.flatMap((other, j) => (j === i ? [] : [{ name: other.name, endpoint: `127.0.0.1:${ports[j]}`, publicKey: identities[j]!.publicKey, ...spec.peerSettings?.[other.name] }])),
      settings: options.settings, train, trainers: 1, log: recorder(events, recorded),
      onRound: (summary) => {
        summaries.push(summary);
        recorded();
      },
      ...(options.maxInnerSteps !== undefined ? { maxInnerSteps: options.maxInnerSteps } : {}),
      ...(options.checkpointDirs?.[spec.name] !== undefined ? { checkpointDir: options.checkpointDirs[spec.name]! } : {}),
      ...(options.checkpointEveryRounds !== undefined ? { checkpointEveryRounds: options.checkpointEveryRounds } : {}),
      ...(spec.misbehaviour ? { misbehaviour: spec.misbehaviour } : {}),
    });
    await coordinator.start();
    const leave = new AbortController();
    const trainer = runTrainerAgent({
      coordinator: coordinator.trainerAddress, identity: { trainerId: `${spec.name}-trainer-0`, group: 'cpu', replica: 0, device: 'cpu' },
      config: train, signal: leave.signal,
    }).catch(() => undefined);
    await coordinator.gateway.waitForTrainers(1, TRAINERS_JOIN_MS);
    return { spec, identity: identities[i]!, coordinator, summaries, events, leave, trainer, running: undefined, stop: new AbortController() };
  };
  for (let i = 0; i < specs.length; i++) clusters.push(await startCluster(i));
  const indexOf = (name: string) => {
    const i = clusters.findIndex((c) => c.spec.name === name);
    if (i < 0) throw new Error(`no cluster ${name}`);
    return i;
  };

  const named = (names: string[] | undefined) => clusters.filter((c) => (names === undefined ? isHonest(c.spec) : names.includes(c.spec.name)));
  return {
    clusters,
    run(names) {
      for (const cluster of names === undefined ? clusters : named(names)) {
        cluster.running = cluster.coordinator.run(cluster.stop.signal);
        cluster.running.catch((error: unknown) => {
          cluster.failure = error;
        });
      }
    },
    async crash(name) {
      const cluster = clusters[indexOf(name)]!;
      cluster.stop.abort();
      cluster.leave.abort();
      await cluster.coordinator.stop(0);
      await cluster.running?.catch(() => undefined);
      await cluster.trainer;
    },
    async restart(name) {
      const i = indexOf(name);
      const before = clusters[i]!;
      const after = await startCluster(i);
      // The round log of the cluster continues in the same lists.
      after.summaries.unshift(...before.summaries);
      after.events.unshift(...before.events);
      clusters[i] = after;
      after.running = after.coordinator.run(after.stop.signal);
      return after;
    },
    async finished(names, timeoutMs = federationRunMs(options.settings.rounds)) {
      const waiting = named(names).map((c) => c.running ?? Promise.reject(new Error(`${c.spec.name} is not running`)));
      await withDeadline(Promise.all(waiting), timeoutMs, `the rounds of ${named(names).map((c) => c.spec.name).join(', ')} to finish`);
    },
    async close() {
      for (const cluster of clusters) {
        cluster.stop.abort();
        cluster.leave.abort();
      }
      await Promise.all(clusters.map(async (c) => {
        await c.running?.catch(() => undefined);
        await c.coordinator.stop();
        await c.trainer;
      }));
    },
  };
}

export function isHonest(spec: ClusterSpec): boolean {
  return spec.honest ?? spec.misbehaviour === undefined;
}

/** Validation loss of parameters on the run's fixed validation batches. */
export async function validationLoss(params: Float32Array, train: TrainConfig = TINY_TRAIN): Promise<number> {
  const thread = await TrainerThread.start(train);
  try {
    await thread.loadParams(params.slice());
    return await thread.evaluate();
  } finally {
    await thread.close();
  }
}

export function rejectedCounts(cluster: ClusterHandle): Promise<Record<string, number>> {
  return countsOf(cluster.coordinator.registry, 'concord_contributions_rejected_total', 'reason');
}
