// Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection does it: the
// holder renews the lease every retry period; another candidate takes it only once it has not
// been renewed for the lease duration; writes go through the Lease's resourceVersion, so two
// candidates never both win. A leader that cannot renew within the renew deadline steps down.
import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import { sleep } from './backoff.js';
import { statusOf } from './kube.js';

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  /** This candidate, e.g. the pod name plus a random suffix. */
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  log?: (event: string, fields?: Record<string, unknown>) => void;
}

export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private leading = false;

  constructor(config: KubeConfig, private readonly options: LeaderElectionOptions) {
    this.api = config.makeApiClient(CoordinationV1Api);
    this.leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = options.retryPeriodMs ?? 2_000;
    if (!(this.retryPeriodMs < this.renewDeadlineMs && this.renewDeadlineMs < this.leaseDurationMs)) {
      throw new Error('leader election needs retryPeriod < renewDeadline < leaseDuration');
    }
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /**
   * Campaigns until this candidate leads, runs `lead` with a signal that aborts when leadership
   * is lost (or `signal` aborts), and returns when it has stepped down. On a clean stop the lease
   * is released so that another candidate takes over at once.
   */
  async run(signal: AbortSignal, lead: (lost: AbortSignal) => Promise<void>): Promise<void> {
    while (!signal.aborted && !(await this.tryAcquireOrRenew())) {
      await sleep(this.retryPeriodMs, signal).catch(() => undefined);
    }
    if (signal.aborted) return;
    this.leading = true;
    this.options.log?.('leader-elected', { lease: this.options.name, identity: this.options.identity });
    const lost = new AbortController();
    const onStop = () => lost.abort(signal.reason);
    signal.addEventListener('abort', onStop, { once: true });
    const renewing = this.renewWhileLeading(lost);
    try {
      await lead(lost.signal);
    } finally {
      lost.abort();
      signal.removeEventListener('abort', onStop);
      await renewing;
      this.leading = false;
      await this.release();
    }
  }

  private async renewWhileLeading(lost: AbortController): Promise<void> {
    let lastRenew = Date.now();
    while (!lost.signal.aborted) {
      await sleep(this.retryPeriodMs, lost.signal).catch(() => undefined);
      if (lost.signal.aborted) return;
      if (await this.tryAcquireOrRenew()) {
        lastRenew = Date.now();
      } else if (Date.now() - lastRenew > this.renewDeadlineMs) {
        this.options.log?.('leader-lost', { lease: this.options.name, identity: this.options.identity });
        lost.abort(new Error('leadership lost: the lease was not renewed within the renew deadline'));
      }
    }
  }

  /** One attempt: true if this candidate holds the lease afterwards. */
  async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.options;
    const now = new V1MicroTime(Date.now());
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (error) {
      if (statusOf(error) !== 404) return false;
      try {
        await this.api.createNamespacedLease({
          namespace,
          body: { metadata: { name, namespace }, spec: { holderIdentity: identity, leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1000), acquireTime: now, renewTime: now, leaseTransitions: 0 } },
        });
        return true;
      } catch {
        return false;
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const renewed = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
    const duration = (spec.leaseDurationSeconds ?? 0) * 1000;
    if (holder !== '' && holder !== identity && renewed + duration > Date.now()) return false;
    const next: V1Lease = {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1000),
        renewTime: now,
        ...(holder === identity ? {} : { acquireTime: now, leaseTransitions: (spec.leaseTransitions ?? 0) + 1 }),
      },
    };
    try {
      await this.api.replaceNamespacedLease({ name, namespace, body: next });
      return true;
    } catch {
      return false;
    }
  }

  /** Gives the lease up (holder cleared), if this candidate still holds it. */
  private async release(): Promise<void> {
    const { namespace, name, identity } = this.options;
    try {
      const lease = await this.api.readNamespacedLease({ name, namespace });
      if (lease.spec?.holderIdentity !== identity) return;
      await this.api.replaceNamespacedLease({ name, namespace, body: { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1 } } });
      this.options.log?.('leader-released', { lease: name, identity });
    } catch {
      // The lease expires on its own.
    }
  }
}
