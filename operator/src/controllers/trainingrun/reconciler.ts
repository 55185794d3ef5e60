// The TrainingRun reconciler: reads the run and its Peers from the cache, checks the spec,
// ensures the identity Secret, server-side-applies the children the builders describe (only
// those whose live state differs), asks the coordinator for its report, and writes the status
// once, if it changed. Level-based: it never depends on which event woke it.
import { createHash } from 'node:crypto';
import { CoreV1Api, type KubeConfig, type KubernetesObject, type V1Secret } from '@kubernetes/client-node';
import type { TrainingRun } from '../../api/types.js';
import { encodePublicKey, generateIdentity, identityFromPem, identityToPem } from '../../federation/identity.js';
import type { Logger } from '../../log.js';
import type { ReconcileResult } from '../../runtime/controller.js';
import type { EventRecorder } from '../../runtime/events.js';
import { holds, statusOf, type Applier } from '../../runtime/kube.js';
import { StatusWriter, type EventPolicy } from '../../runtime/status-writer.js';
import type { ClusterCache } from '../cache.js';
import { usablePeers } from '../peer/status.js';
import { peersOfRun } from '../peer-selection.js';
import type { ReportBook } from '../reports.js';
import { childrenOf, identitySecretOf, type Images } from './builders.js';
import { LABELS, names } from './names.js';
import { InvalidSpecError, validateRun } from './run-config.js';
import { desiredStatus } from './status.js';

export interface TrainingRunReconcilerOptions {
  config: KubeConfig;
  cache: ClusterCache;
  applier: Applier;
  events: EventRecorder;
  reports: ReportBook;
  images: Images;
  log: Logger;
  /** How often a running run's coordinator is asked for its report. */
  pollMs: number;
  /** Peers of a reconciled run, handed to the Peer controller (their status follows the report). */
  onPeers?: (keys: string[]) => void;
  now?: () => Date;
}

/** Identities remembered at most (one per run; forgotten all at once past this). */
const MAX_REMEMBERED_IDENTITIES = 10_000;

export class TrainingRunReconciler {
  private readonly core: CoreV1Api;
  private readonly status: StatusWriter;
  private readonly identities = new Map<string, { peerId: string; publicKey: string }>();

  constructor(private readonly options: TrainingRunReconcilerOptions) {
    this.core = options.config.makeApiClient(CoreV1Api);
    this.status = new StatusWriter(options.config, options.events);
  }

  readonly reconcile = async (key: string): Promise<ReconcileResult> => {
    const { cache, reports } = this.options;
    const [namespace, name] = key.split('/') as [string, string];
    const run = cache.runs.get(name, namespace);
    if (run === undefined || run.metadata.deletionTimestamp !== undefined) {
      // Children go with their owner (garbage collection by owner references).
      reports.set(key, undefined);
      return {};
    }
    // The run's Peers: those naming it that its peerSelector selects. The others are handed to
    // the Peer controller too, which tells their owners why they are left out.
    const { selected: members, unselected } = peersOfRun(run, cache.peers.list(namespace));

    let invalid: string | undefined;
    try {
      validateRun(run);
    } catch (error) {
      if (!(error instanceof InvalidSpecError)) throw error;
      invalid = error.message;
    }
    let identity: { secretName: string; peerId: string; publicKey: string } | undefined;
    if (invalid === undefined) {
      const found = await this.ensureIdentity(run);
      if ('problem' in found) invalid = found.problem;
      else identity = found;
    }
    // Peers with a problem (a bad key, a twin, the run's own key) stay out of the coordinator's
    // config; their own status says why.
    const peers = usablePeers(members, identity?.publicKey);
    const children = childrenOf(run, peers, this.options.images);
    if (invalid === undefined) await this.applyChildren(run, children);

    const coordinator = cache.deployments.get(children.coordinator.metadata!.name!, namespace);
    // Only an available coordinator is asked (a pod that is not up would cost a timeout per pass).
    const available = (coordinator?.status?.availableReplicas ?? 0) >= 1;
    const report = invalid === undefined && !run.spec.suspend && available ? await reports.fetch(run) : undefined;
    reports.set(key, report);
    const status = desiredStatus({
      // Every Peer of the run counts in the summary, one the operator refused too (it is not verified).
      run, peers: members, now: this.now(),
      ...(invalid !== undefined ? { invalid } : {}),
      ...(identity !== undefined ? { identity } : {}),
      ...(report !== undefined ? { report } : {}),
      ...(coordinator !== undefined ? { coordinator } : {}),
      trainers: children.trainers.map((desired) => ({ desired: desired.spec!.replicas!, live: cache.statefulSets.get(desired.metadata!.name!, namespace) })),
    });
    await this.status.write('trainingruns', run, status, TrainingRunReconciler.events);
    this.options.onPeers?.([...members, ...unselected].map((peer) => `${namespace}/${peer.metadata.name}`));
    const settled = invalid !== undefined || run.spec.suspend || status.phase === 'Succeeded';
    return settled ? {} : { requeueAfterMs: this.options.pollMs };
  };

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }

  /**
   * The run's identity: read from its Secret, or a fresh key in a new Secret when there is none.
   * An existing Secret is never overwritten; one that holds no usable key is reported as a spec
   * problem (the owner must fix or delete it).
   */
  private async ensureIdentity(run: TrainingRun): Promise<{ secretName: string; peerId: string; publicKey: string } | { problem: string }> {
    const namespace = run.metadata.namespace!;
    const secretName = names.identitySecret(run);
    const read = () => this.core.readNamespacedSecret({ name: secretName, namespace });
    const create = async (): Promise<V1Secret | undefined> => {
      const fresh = generateIdentity();
      try {
        const created = await this.core.createNamespacedSecret({ namespace, body: identitySecretOf(run, { privateKeyPem: identityToPem(fresh), publicKey: encodePublicKey(fresh.publicKey) }) });
        this.options.log.info('identity-created', { run: `${namespace}/${run.metadata.name}`, secret: secretName, peerId: fresh.peerId });
        return created;
      } catch (error) {
        // It exists (the owner's, or made meanwhile): never overwritten, read below.
        if (statusOf(error) !== 409) throw error;
        return undefined;
      }
    };
    let secret: V1Secret | undefined;
    if (run.status?.identity?.publicKey === undefined && run.spec.federation.identitySecret === undefined) {
      // A new run: one create, no read first (a 409 means it exists, and it is read instead).
      secret = (await create()) ?? (await read());
    } else {
      try {
        secret = await read();
      } catch (error) {
        if (statusOf(error) !== 404) throw error;
        secret = (await create()) ?? (await read());
      }
    }
    const pem = secret.data?.['private.pem'] !== undefined ? Buffer.from(secret.data['private.pem'], 'base64').toString('utf8') : secret.stringData?.['private.pem'];
    if (pem === undefined) return { problem: `spec.federation.identitySecret: Secret ${secretName} has no "private.pem" key` };
    try {
      return { secretName, ...this.publicIdentityOf(pem) };
    } catch (error) {
      return { problem: `spec.federation.identitySecret: Secret ${secretName}: ${(error as Error).message}` };
    }
  }

  /**
   * The public half of a private key, remembered by the key's SHA-256: parsing a PEM key costs
   * more than the rest of a pass's CPU for the identity (measured: createPrivateKey was the
   * operator's largest single cost with 500 runs), and a run's key never changes.
   */
  private publicIdentityOf(pem: string): { peerId: string; publicKey: string } {
    const digest = createHash('sha256').update(pem).digest('hex');
    let known = this.identities.get(digest);
    if (known === undefined) {
      const identity = identityFromPem(pem);
      known = { peerId: identity.peerId, publicKey: encodePublicKey(identity.publicKey) };
      if (this.identities.size >= MAX_REMEMBERED_IDENTITIES) this.identities.clear();
      this.identities.set(digest, known);
    }
    return known;
  }

  /** Applies each child whose live copy does not already hold the desired fields; removes trainer groups no longer in the spec. */
  private async applyChildren(run: TrainingRun, children: ReturnType<typeof childrenOf>): Promise<void> {
    const { cache, applier } = this.options;
    const namespace = run.metadata.namespace!;
    const pairs: Array<[KubernetesObject, KubernetesObject | undefined]> = [
      [children.configMap, cache.configMaps.get(children.configMap.metadata!.name!, namespace)],
      [children.checkpoints, cache.claims.get(children.checkpoints.metadata!.name!, namespace)],
      [children.coordinatorService, cache.services.get(children.coordinatorService.metadata!.name!, namespace)],
      [children.federationService, cache.services.get(children.federationService.metadata!.name!, namespace)],
      [children.coordinator, cache.deployments.get(children.coordinator.metadata!.name!, namespace)],
      ...children.trainers.map((sts): [KubernetesObject, KubernetesObject | undefined] => [sts, cache.statefulSets.get(sts.metadata!.name!, namespace)]),
    ];
    for (const [desired, live] of pairs) {
      // List items carry no apiVersion/kind: compare the rest.
      if (live !== undefined && holds(live, { ...desired, apiVersion: undefined, kind: undefined })) continue;
      await applier.apply(desired);
    }
    const wanted = new Set(children.trainers.map((sts) => sts.metadata!.name!));
    for (const sts of cache.statefulSets.list(namespace)) {
      const labels = sts.metadata?.labels ?? {};
      if (labels[LABELS.run] !== run.metadata.name || labels[LABELS.component] !== 'trainer' || wanted.has(sts.metadata!.name!)) continue;
      if (!sts.metadata?.ownerReferences?.some((ref) => ref.uid === run.metadata.uid)) continue;
      await applier.delete({ apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: sts.metadata!.name!, namespace } });
    }
  }

  /**
   * Events: a condition's first value is in the status already; events tell what changed after
   * that, and every warning (InvalidSpec, Degraded=True).
   */
  private static readonly events: EventPolicy = (condition, from) => {
    const warning = (condition.type === 'Degraded' && condition.status === 'True') || condition.reason === 'InvalidSpec';
    if (warning) return 'Warning';
    return from === undefined ? undefined : 'Normal';
  };

}
