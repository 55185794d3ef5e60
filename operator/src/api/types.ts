// TypeScript shapes of the concord.dev/v1alpha1 resources, as the operator reads and writes them.
// The schema itself lives in crds/ (the single source: bounds, defaults, enums); these types
// describe the objects after the API server applied its defaults. test/unit/api-types.test.ts
// checks that every field here exists in the CRD schema and the other way round.
import type { V1ObjectMeta, V1Toleration } from '@kubernetes/client-node';

export const GROUP = 'concord.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message?: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

export interface WorkerGroup {
  name: string;
  replicas: number;
  batch?: number;
  gpu?: { resource: string; count: number };
  threads?: number;
  resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
  nodeSelector?: Record<string, string>;
  tolerations?: V1Toleration[];
}

export interface TrainingRunSpec {
  runId: string;
  seed: number;
  suspend: boolean;
  model: {
    family?: 'gpt' | 'llama'; vocabSize: number; seqLen: number; layers: number; dModel: number; heads: number;
    kvHeads?: number; ffnWidth?: number; ropeTheta?: number; normEps?: number; tiedEmbeddings?: boolean;
  };
  data: { corpus: 'brown'; genres: string; validationEvery: number; dataset?: { claimName: string; path?: string; hash: string } };
  workers: WorkerGroup[];
  inner: { batch: number; lr: number; warmupSteps: number; minLrRatio: number; weightDecay: number; gradClip: number; beta1: number; beta2: number };
  outer: { optimizer: 'nesterov' | 'sgd'; lr?: number; momentum: number; rounds: number; windowSeconds: number; graceSeconds: number; deliveryBoundSeconds: number; maxInnerSteps?: number; maxTokensPerRound?: number; relativeTokenCap: number; maxShare: number };
  compression: { chunk: number; topk: number; bits: number; errorDecay: number };
  validation: { batches: number; sample?: number; reputationFloor: number; harm: number; help: number; relative: number };
  federation: {
    port: number;
    serviceType: 'ClusterIP' | 'NodePort' | 'LoadBalancer';
    identitySecret?: string;
    quorum?: number;
    maxContributionBytes: number;
    transfer: { concurrency: number; bytesPerSecond: number; minBytesPerSecond: number };
    peerSelector?: LabelSelector;
  };
  checkpoint: { size: string; storageClassName?: string; everyRounds: number };
}

/** A Kubernetes label selector (metav1.LabelSelector). */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: Array<{ key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }>;
}

export type RunPhase = 'Pending' | 'Running' | 'Suspended' | 'Succeeded' | 'Failed';

export interface TrainingRunStatus {
  observedGeneration?: number;
  phase?: RunPhase;
  round?: number;
  rounds?: number;
  progress?: string;
  modelHash?: string;
  loss?: number;
  tokens?: number;
  eta?: string;
  lastProgressTime?: string;
  identity?: { secretName?: string; peerId?: string; publicKey?: string };
  peers?: { configured?: number; reachable?: number; verified?: number; banned?: number; summary?: string };
  conditions?: Condition[];
}

export interface TrainingRun {
  apiVersion: typeof API_VERSION;
  kind: 'TrainingRun';
  metadata: V1ObjectMeta;
  spec: TrainingRunSpec;
  status?: TrainingRunStatus;
}

export interface PeerSpec {
  runRef: { name: string };
  endpoint: string;
  publicKey: string;
  weight?: number;
  maxContributionBytes?: number;
}

export interface PeerStatus {
  observedGeneration?: number;
  peerId?: string;
  lastHandshake?: string;
  lastSeen?: string;
  rttMs?: number;
  reputation?: number;
  accepted?: number;
  rejected?: number;
  rejectedByReason?: Record<string, number>;
  banned?: { reason?: string; round?: number; evidence?: string };
  conditions?: Condition[];
}

export interface Peer {
  apiVersion: typeof API_VERSION;
  kind: 'Peer';
  metadata: V1ObjectMeta;
  spec: PeerSpec;
  status?: PeerStatus;
}
