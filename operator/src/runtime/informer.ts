// An informer that does not give up: client-node's ListWatch stops for good on an error (a
// dropped watch, an API server restart, a failed list); this one starts it again with
// exponential backoff and tells its handler about every add, update and delete.
import { makeInformer, type KubeConfig, type KubernetesListObject, type KubernetesObject, type ListPromise } from '@kubernetes/client-node';
import { backoffDelayMs } from './backoff.js';

export type InformerEvent = 'add' | 'update' | 'delete';

export interface InformerOptions<T extends KubernetesObject> {
  /** The watch path, e.g. /apis/apps/v1/deployments or /apis/concord.dev/v1alpha1/namespaces/ns/peers. */
  path: string;
  list: ListPromise<T>;
  labelSelector?: string;
  onEvent: (event: InformerEvent, object: T) => void;
  onError?: (error: unknown, retryInMs: number) => void;
  /**
   * Trims each object before it is cached and handed on (in place), e.g. dropping
   * metadata.managedFields, which the operator never reads and which can outweigh the rest.
   */
  transform?: (object: T) => void;
  baseDelayMs?: number;
  maxDelayMs?: number;
}

export class ResilientInformer<T extends KubernetesObject> {
  private readonly informer;
  private attempts = 0;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private listedOnce = false;

  constructor(config: KubeConfig, private readonly options: InformerOptions<T>) {
    // The list callback counts a successful list, so start() can tell "synced" from "failed".
    const list: ListPromise<T> = async () => {
      const result: KubernetesListObject<T> = await options.list();
      if (options.transform) for (const item of result.items) options.transform(item);
      this.listedOnce = true;
      this.attempts = 0;
      return result;
    };
    this.informer = makeInformer<T>(config, options.path, list, options.labelSelector);
    // The watch stores an object before the callbacks run, and they get the same reference: the
    // transform here trims the cached copy too.
    const handle = (event: InformerEvent) => (object: T) => {
      options.transform?.(object);
      this.attempts = 0;
      options.onEvent(event, object);
    };
    this.informer.on('add', handle('add'));
    this.informer.on('update', handle('update'));
    this.informer.on('delete', handle('delete'));
    this.informer.on('error', (error) => this.restartLater(error));
  }

  /** Starts watching; resolves once the first list succeeded (retrying with backoff until then). */
  async start(signal?: AbortSignal): Promise<void> {
    this.stopped = false;
    await this.informer.start();
    while (!this.listedOnce && !this.stopped) {
      if (signal?.aborted) throw signal.reason;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    await this.informer.stop();
  }

  get(name: string, namespace?: string): T | undefined {
    return this.informer.get(name, namespace);
  }

  list(namespace?: string): readonly T[] {
    return this.informer.list(namespace);
  }

  private restartLater(error: unknown): void {
    if (this.stopped || this.timer !== undefined) return;
    const delay = backoffDelayMs(this.attempts++, this.options.baseDelayMs ?? 200, this.options.maxDelayMs ?? 30_000);
    this.options.onError?.(error, delay);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.stopped) return;
      this.informer.start().catch((e: unknown) => this.restartLater(e));
    }, delay);
    this.timer.unref();
  }
}
