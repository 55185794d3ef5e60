import { parse } from 'yaml';
import { ConfigError, configFields } from '../../../trainer/src/config-error.js';
import { parsePublicKey } from '../federation/identity.js';
import { Limits } from '../federation/limits.js';
import { parseTrainConfig, type TrainConfig } from '../../../trainer/src/train/config.js';
import { parseRoundSettings, type RoundSettings } from './round-settings.js';

/** How one coordinator process is configured (a file; in Kubernetes, the run's ConfigMap). */
export interface CoordinatorConfig {
  /** A name for logs: the cluster or owner. */
  name: string;
  runId: string;
  /** PEM file with the run identity's private key. */
  identityFile: string;
  /** Where the federation endpoint listens. */
  listen: { host: string; port: number };
  /** Where this cluster's trainers connect (TrainerService). */
  trainerListen: { host: string; port: number };
  /** Trainers to wait for before the first round. */
  trainers: number;
  /** Where GET /metrics is served for Prometheus; none if absent. */
  metricsListen: { host: string; port: number } | undefined;
  peers: PeerConfig[];
  /** The model, data and inner/outer optimizers (trainer/src/train/config.ts). */
  train: TrainConfig;
  rounds: RoundSettings;
  /** The run's volume for the local checkpoint; none if absent. */
  checkpointDir: string | undefined;
  /** The checkpoint is written after rounds whose number is a multiple of this (default 1). */
  checkpointEveryRounds: number;
  /** Inner steps per round at most (demos, benchmarks); absent = until the window ends. */
  maxInnerSteps: number | undefined;
}

export interface PeerConfig {
  name: string;
  /** `host:port` of the peer's federation endpoint. */
  endpoint: string;
  publicKey: Buffer;
  /** 0..1 (default 1): multiplies this coordinator's scores of the peer's contributions in its
   * manifests (Peer spec.weight). */
  weight?: number;
  /** The largest payload this coordinator votes for from the peer; absent: the run's limit
   * (Peer spec.maxContributionBytes). */
  maxContributionBytes?: number;
}

export { ConfigError };

export function parseCoordinatorConfig(text: string): CoordinatorConfig {
  let raw: unknown;
  try {
    raw = parse(text);
  } catch (error) {
    throw new ConfigError('(file)', `not valid YAML: ${(error as Error).message}`);
  }
  return readCoordinatorConfig(raw);
}

/** The checks of parseCoordinatorConfig on the file's content as plain data (the operator's
 * validation of a TrainingRun, which builds that data and need not round-trip it through YAML). */
export function readCoordinatorConfig(raw: unknown): CoordinatorConfig {
  const root = object(raw, '(file)');
  const name = string(root.name, 'name', 63);
  const runId = string(root.runId, 'runId', Limits.runIdChars);
  const identityFile = string(root.identityFile, 'identityFile', 4096);
  const listen = hostPort(string(root.listen, 'listen', 300), 'listen');
  const peersRaw = root.peers ?? [];
  if (!Array.isArray(peersRaw)) throw new ConfigError('peers', 'must be a list');
  const peers = peersRaw.map((entry, i): PeerConfig => {
    const field = `peers[${i}]`;
    const peer = object(entry, field);
    const endpoint = string(peer.endpoint, `${field}.endpoint`, 300);
    hostPort(endpoint, `${field}.endpoint`);
    let publicKey: Buffer;
    try {
      publicKey = parsePublicKey(string(peer.publicKey, `${field}.publicKey`, 4096));
    } catch (error) {
      throw new ConfigError(`${field}.publicKey`, (error as Error).message);
    }
    const weight = peer.weight ?? 1;
    if (typeof weight !== 'number' || !(weight >= 0 && weight <= 1)) throw new ConfigError(`${field}.weight`, `must be a number from 0 to 1, got ${JSON.stringify(weight)}`);
    const maxContributionBytes = peer.maxContributionBytes;
    if (maxContributionBytes !== undefined && (typeof maxContributionBytes !== 'number' || !Number.isInteger(maxContributionBytes) || maxContributionBytes < 1024 || maxContributionBytes > 2 ** 32)) {
      throw new ConfigError(`${field}.maxContributionBytes`, `must be an integer from 1024 to ${2 ** 32}, got ${JSON.stringify(maxContributionBytes)}`);
    }
    configFields(peer, field, ['name', 'endpoint', 'publicKey', 'weight', 'maxContributionBytes']);
    return { name: string(peer.name, `${field}.name`, 63), endpoint, publicKey, weight, ...(maxContributionBytes === undefined ? {} : { maxContributionBytes }) };
  });
  const seen = new Set<string>();
  peers.forEach((peer, i) => {
    if (seen.has(peer.name)) throw new ConfigError(`peers[${i}].name`, `"${peer.name}" is listed twice`);
    seen.add(peer.name);
  });
  // Unknown fields are reported after the peers, whose errors are the more useful.
  configFields(root, '(file)', ['name', 'runId', 'identityFile', 'listen', 'trainerListen', 'metricsListen', 'trainers', 'peers', 'train', 'rounds', 'checkpointDir', 'checkpointEveryRounds', 'maxInnerSteps']);
  const trainerListen = hostPort(string(root.trainerListen, 'trainerListen', 300), 'trainerListen');
  const metricsListen = root.metricsListen === undefined ? undefined : hostPort(string(root.metricsListen, 'metricsListen', 300), 'metricsListen');
  const trainers = root.trainers ?? 1;
  if (typeof trainers !== 'number' || !Number.isInteger(trainers) || trainers < 1) throw new ConfigError('trainers', `must be a positive integer, got ${JSON.stringify(trainers)}`);
  const maxInnerSteps = root.maxInnerSteps;
  if (maxInnerSteps !== undefined && (typeof maxInnerSteps !== 'number' || !Number.isInteger(maxInnerSteps) || maxInnerSteps < 1)) {
    throw new ConfigError('maxInnerSteps', `must be a positive integer, got ${JSON.stringify(maxInnerSteps)}`);
  }
  const checkpointDir = root.checkpointDir === undefined ? undefined : string(root.checkpointDir, 'checkpointDir', 4096);
  const checkpointEveryRounds = root.checkpointEveryRounds ?? 1;
  if (typeof checkpointEveryRounds !== 'number' || !Number.isInteger(checkpointEveryRounds) || checkpointEveryRounds < 1) {
    throw new ConfigError('checkpointEveryRounds', `must be a positive integer, got ${JSON.stringify(checkpointEveryRounds)}`);
  }
  if (root.train === undefined) throw new ConfigError('train', 'is required (model, data, inner, outer)');
  let train: TrainConfig;
  try {
    train = parseTrainConfig(root.train);
  } catch (error) {
    if (error instanceof ConfigError) throw new ConfigError(error.field === '(file)' ? 'train' : `train.${error.field}`, error.problem);
    throw error;
  }
  // Partners compare datasets by hash in the handshake: a coordinator cannot read its trainers'
  // volume, so a run on a prepared dataset names the hash.
  if (train.data.dir !== undefined && train.data.hash === undefined) throw new ConfigError('train.data.hash', 'is required with train.data.dir: a federated run pins its dataset by the hash `npm run dataset` printed');
  const rounds = parseRoundSettings(root.rounds, 'rounds');
  return { name, runId, identityFile, listen, trainerListen, metricsListen, trainers, peers, train, rounds, checkpointDir, checkpointEveryRounds, maxInnerSteps };
}

function object(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ConfigError(field, 'must be a mapping');
  return value as Record<string, unknown>;
}

function string(value: unknown, field: string, maxLength: number): string {
  if (value === undefined || value === null || value === '') throw new ConfigError(field, 'is required');
  if (typeof value !== 'string') throw new ConfigError(field, `must be a string, got ${typeof value} ${JSON.stringify(value)}`);
  if (value.length > maxLength) throw new ConfigError(field, `must be at most ${maxLength} characters`);
  return value;
}

function hostPort(value: string, field: string): { host: string; port: number } {
  const match = /^(.+):(\d{1,5})$/.exec(value);
  const port = match ? Number(match[2]) : NaN;
  if (!match || port > 65535) throw new ConfigError(field, `must be host:port, got "${value}"`);
  return { host: match[1]!, port };
}
