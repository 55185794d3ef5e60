// A test kubelet: the stand-in for a node (and for the little a scheduler and a cloud load
// balancer would do) in a cluster whose API server is real but which has no container runtime.
// It runs the pods bound to its node as local processes of the project's own entry points, as a
// kubelet runs containers — it never decides anything the operator or the Kubernetes controllers
// decide; docs/e2e.md says what it does and does not do.
//
// Per pod: a loopback address of its own (127.N.x.y; pod-network.mjs binds "all interfaces" to it),
// its volumes as directories bind-mounted where the pod spec says, in a mount namespace of its
// own (`unshare --mount`, so root is needed), an /etc/hosts with the cluster's Services (the
// stand-in for cluster DNS), env with $(VAR) expansion and the downward API, the in-cluster API
// server address, readiness from the pod's HTTP probes, restarts with backoff, and SIGTERM then
// SIGKILL when the pod is deleted.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  CoreV1Api, PatchStrategy, setHeaderOptions, type V1Container, type V1Pod, type V1PodStatus, type V1Service,
} from '@kubernetes/client-node';
import type { TestCluster } from '../../scripts/kube/cluster.js';
import { PROJECT_ROOT } from '../../scripts/project-root.js';

/** pod-network.mjs in the checkout (not compiled: the same file under jest and built). */
const PRELOAD = join(PROJECT_ROOT, 'test/e2e/pod-network.mjs');
const PROJECT = PROJECT_ROOT;
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export interface KubeletOptions {
  cluster: TestCluster;
  /** The node's name (a Node object of that name is registered). */
  node: string;
  /** Second octet of this node's pod addresses (127.<subnet>.x.y); different for every kubelet. */
  subnet: number;
  /** Image (repository, without tag) → the directory its files are in (the container's working directory). */
  images: Record<string, string>;
  /** Where pod directories, volumes and logs go. */
  dir: string;
  /** API server port, as pods see it (KUBERNETES_SERVICE_HOST/PORT). */
  apiServerPort: number;
  pollMs?: number;
}

interface RunningPod {
  uid: string;
  ip: string;
  dir: string;
  hostsFile: string;
  process: ChildProcess | undefined;
  restarts: number;
  startedAt: Date | undefined;
  ready: boolean;
  /** Consecutive failed readiness probes, and when the last probe ran (ms since the epoch). */
  probeFailures: number;
  lastProbeMs: number;
  lastExit: { code: number | null; signal: string | null } | undefined;
  restartTimer: NodeJS.Timeout | undefined;
  stopping: boolean;
  waiting: string | undefined;
}

/** A LoadBalancer Service's stand-in: a stable address of its own, forwarding to a ready pod. */
interface Balancer {
  ip: string;
  servers: Server[];
  /** `podIP` of a ready endpoint, for new connections (undefined: refused). */
  endpoint: string | undefined;
  /** service port → target container port. */
  targets: Map<number, number>;
}

export class TestKubelet {
  private readonly core: CoreV1Api;
  private readonly pods = new Map<string, RunningPod>();
  private readonly balancers = new Map<string, Balancer>();
  private nextBalancer = 2;
  private nextAddress = 2;
  private timer: NodeJS.Timeout | undefined;
  private passing: Promise<void> = Promise.resolve();
  private stopped = false;
  /** Errors of the last passes (for a test that wants to know why a pod does not run). */
  readonly errors: string[] = [];

  constructor(private readonly options: KubeletOptions) {
    this.core = options.cluster.config.makeApiClient(CoreV1Api);
  }

  async start(): Promise<void> {
    await mkdir(this.options.dir, { recursive: true });
    await this.core.createNode({ body: { metadata: { name: this.options.node, labels: { 'kubernetes.io/hostname': this.options.node } } } }).catch(() => undefined);
    await this.core.patchNodeStatus({
      name: this.options.node,
      body: { status: { conditions: [{ type: 'Ready', status: 'True', reason: 'TestKubeletReady', message: 'test kubelet (test/e2e/kubelet.ts)', lastHeartbeatTime: new Date(), lastTransitionTime: new Date() }] } },
    }, mergePatch).catch(() => undefined);
    const tick = () => {
      if (this.stopped) return;
      this.passing = this.pass().catch((error: unknown) => this.note(`pass: ${String(error)}`)).finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, this.options.pollMs ?? 300);
      });
    };
    tick();
  }

  /** Stops every pod process (as a node going down would) and the loop. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    await this.passing;
    await Promise.all([...this.pods.values()].map((pod) => this.kill(pod, 2_000)));
    for (const balancer of this.balancers.values()) for (const server of balancer.servers) server.close();
  }

  /** The pod's log file (stdout and stderr of its container). */
  logOf(namespace: string, name: string): string {
    return join(this.options.dir, `${namespace}_${name}`, 'container.log');
  }

  /** Where a PersistentVolumeClaim's volume lives on this node: a directory that outlives pods. */
  claimDir(namespace: string, claimName: string): string {
    return join(this.options.dir, 'claims', namespace, claimName);
  }

  private note(message: string): void {
    this.errors.push(`${new Date().toISOString()} ${message}`);
    if (this.errors.length > 50) this.errors.shift();
  }

  /** One level-based pass: schedule, start, stop, report, and refresh DNS and load balancers. */
  private async pass(): Promise<void> {
    const [podList, serviceList] = await Promise.all([this.core.listPodForAllNamespaces(), this.core.listServiceForAllNamespaces()]);
    const pods = podList.items;
    // The scheduler's part: one node, so every unbound pod is bound to it.
    for (const pod of pods.filter((p) => !p.spec?.nodeName && !p.metadata?.deletionTimestamp)) {
      await this.core.createNamespacedBinding({
        namespace: pod.metadata!.namespace!,
        body: { metadata: { name: pod.metadata!.name!, namespace: pod.metadata!.namespace! }, target: { apiVersion: 'v1', kind: 'Node', name: this.options.node } },
      }).catch((error: unknown) => this.note(`bind ${pod.metadata!.name}: ${String(error)}`));
    }
    const mine = pods.filter((p) => p.spec?.nodeName === this.options.node);
    const seen = new Set<string>();
    for (const pod of mine) {
      const key = `${pod.metadata!.namespace}/${pod.metadata!.name}`;
      seen.add(key);
      let running = this.pods.get(key);
      if (running !== undefined && running.uid !== pod.metadata!.uid) {
        await this.kill(running, 5_000);
        this.pods.delete(key);
        running = undefined;
      }
      if (pod.metadata!.deletionTimestamp !== undefined) {
        if (running !== undefined) {
          await this.kill(running, Math.min(10_000, 1000 * (pod.spec?.terminationGracePeriodSeconds ?? 30)));
          this.pods.delete(key);
        }
        await this.core.deleteNamespacedPod({ name: pod.metadata!.name!, namespace: pod.metadata!.namespace!, gracePeriodSeconds: 0 }).catch(() => undefined);
        continue;
      }
      if (running === undefined) {
        running = await this.admit(pod);
        this.pods.set(key, running);
        await this.launch(pod, running);
      }
      await this.probe(pod, running);
      await this.report(pod, running);
    }
    for (const [key, running] of this.pods) {
      if (!seen.has(key)) {
        await this.kill(running, 5_000);
        this.pods.delete(key);
      }
    }
    await this.publishServices(serviceList.items, mine);
  }

  private async admit(pod: V1Pod): Promise<RunningPod> {
    const n = this.nextAddress++;
    const dir = join(this.options.dir, `${pod.metadata!.namespace}_${pod.metadata!.name}`);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'hosts'), '127.0.0.1 localhost\n');
    return {
      uid: pod.metadata!.uid!, ip: `127.${this.options.subnet}.${Math.floor(n / 250)}.${(n % 250) + 2}`, dir, hostsFile: join(dir, 'hosts'),
      process: undefined, restarts: 0, startedAt: undefined, ready: false, probeFailures: 0, lastProbeMs: 0, lastExit: undefined, restartTimer: undefined, stopping: false, waiting: 'ContainerCreating',
    };
  }

  /** Prepares the volumes and starts the pod's (first) container; restarts it with backoff when it exits. */
  private async launch(pod: V1Pod, running: RunningPod): Promise<void> {
    const container = pod.spec!.containers[0]!;
    const root = this.options.images[(container.image ?? '').replace(/:[^/:]*$/, '')];
    if (root === undefined) {
      running.waiting = 'ErrImagePull';
      this.note(`${pod.metadata!.name}: no local build for image ${container.image}`);
      return;
    }
    let mounts: string[];
    try {
      mounts = await this.volumes(pod, container, running, root);
    } catch (error) {
      running.waiting = 'CreateContainerConfigError';
      this.note(`${pod.metadata!.name}: volumes: ${String(error)}`);
      // Retried on a later pass (a Secret or ConfigMap may appear).
      this.pods.delete(`${pod.metadata!.namespace}/${pod.metadata!.name}`);
      return;
    }
    const env = this.environment(pod, container, running);
    const expand = (s: string) => s.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (all, name: string) => env[name] ?? all);
    const argv = [...(container.command ?? []), ...(container.args ?? [])].map(expand);
    if (argv[0] === 'node') argv[0] = process.execPath;
    // In a mount namespace of its own: the volumes where the pod spec says, and its /etc/hosts.
    const script = [`mount --bind ${q(running.hostsFile)} /etc/hosts`, ...mounts, 'exec "$@"'].join(' && ');
    const start = () => {
      if (running.stopping) return;
      const log = createWriteStream(join(running.dir, 'container.log'), { flags: 'a' });
      const child = spawn('unshare', ['--mount', '--propagation', 'private', '--', '/bin/sh', '-c', script, 'pod', ...argv], {
        cwd: root, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout!.pipe(log, { end: false });
      child.stderr!.pipe(log, { end: false });
      running.process = child;
      running.startedAt = new Date();
      running.waiting = undefined;
      running.ready = false;
      running.probeFailures = 0;
      child.on('exit', (code, signal) => {
        log.end();
        running.process = undefined;
        running.lastExit = { code, signal };
        running.ready = false;
        if (running.stopping || pod.spec?.restartPolicy === 'Never') return;
        running.restarts++;
        running.waiting = 'CrashLoopBackOff';
        const delay = Math.min(10_000, 500 * 2 ** Math.min(running.restarts, 5));
        running.restartTimer = setTimeout(start, delay);
      });
    };
    start();
  }

  /** Writes each volume into the pod's directory; returns the mount commands for the container's volumeMounts. */
  private async volumes(pod: V1Pod, container: V1Container, running: RunningPod, root: string): Promise<string[]> {
    const namespace = pod.metadata!.namespace!;
    const paths = new Map<string, string>();
    for (const volume of pod.spec?.volumes ?? []) {
      let path = join(running.dir, 'volumes', volume.name);
      await mkdir(path, { recursive: true });
      if (volume.configMap) {
        const configMap = await this.core.readNamespacedConfigMap({ name: volume.configMap.name!, namespace });
        for (const [key, value] of Object.entries(configMap.data ?? {})) await writeFile(join(path, key), value);
      } else if (volume.secret) {
        const secret = await this.core.readNamespacedSecret({ name: volume.secret.secretName!, namespace });
        for (const [key, value] of Object.entries(secret.data ?? {})) {
          await writeFile(join(path, key), Buffer.from(value, 'base64'));
          await chmod(join(path, key), volume.secret.defaultMode ?? 0o644);
        }
      } else if (volume.persistentVolumeClaim) {
        // A claim outlives its pods: its directory belongs to the claim, not the pod.
        path = this.claimDir(namespace, volume.persistentVolumeClaim.claimName);
        await mkdir(path, { recursive: true });
      } else if (volume.emptyDir === undefined) {
        throw new Error(`volume ${volume.name}: only configMap, secret, persistentVolumeClaim and emptyDir are supported`);
      }
      paths.set(volume.name, path);
    }
    // A mount over a directory that holds what the process needs from this machine (its image
    // root, the preload, Node itself; e.g. an emptyDir at /tmp when the checkout is under /tmp)
    // would hide them: those paths are bound into the volume first and the volume is mounted with
    // its submounts (--rbind). Mounts that would hide the kubelet's own files (the sources of the
    // other volumes) go last.
    const needed = [...new Set([root, PROJECT, dirname(process.execPath)])];
    const under = (path: string, target: string) => `${path}/`.startsWith(`${target.replace(/\/$/, '')}/`);
    const hides = (target: string) => under(this.options.dir, target);
    const mounts = [...(container.volumeMounts ?? [])].sort((a, b) => Number(hides(a.mountPath)) - Number(hides(b.mountPath)));
    return mounts.map((mount) => {
      const source = paths.get(mount.name);
      if (source === undefined) throw new Error(`volumeMount ${mount.name} has no volume`);
      const target = q(mount.mountPath);
      const keep = needed.filter((path) => under(path, mount.mountPath) && !needed.some((other) => other !== path && under(path, other) && under(other, mount.mountPath)));
      const carried = keep.map((path) => {
        const inside = join(source, path.slice(mount.mountPath.replace(/\/$/, '').length));
        return `mkdir -p ${q(inside)} && mount --bind ${q(path)} ${q(inside)}`;
      });
      const bind = carried.length > 0 ? '--rbind' : '--bind';
      return [...carried, `mkdir -p ${target} && mount ${bind} ${q(source)} ${target}${mount.readOnly ? ` && mount -o remount,bind,ro ${target}` : ''}`].join(' && ');
    });
  }

  private environment(pod: V1Pod, container: V1Container, running: RunningPod): Record<string, string> {
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: '/tmp',
      HOSTNAME: pod.metadata!.name!,
      KUBERNETES_SERVICE_HOST: '127.0.0.1',
      KUBERNETES_SERVICE_PORT: String(this.options.apiServerPort),
      CONCORD_TEST_POD_IP: running.ip,
    };
    const field = (path: string) => ({ 'metadata.name': pod.metadata!.name!, 'metadata.namespace': pod.metadata!.namespace!, 'status.podIP': running.ip, 'spec.nodeName': this.options.node })[path] ?? '';
    for (const variable of container.env ?? []) {
      if (variable.value !== undefined) env[variable.name] = variable.value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (all, name: string) => env[name] ?? all);
      else if (variable.valueFrom?.fieldRef) env[variable.name] = field(variable.valueFrom.fieldRef.fieldPath);
    }
    env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ''} --import=${PRELOAD}`.trim();
    return env;
  }

  /**
   * Readiness from the container's HTTP readiness probe (ready once running when it has none), as
   * a kubelet judges it: a pod not yet ready is probed on every pass (so start-up is seen at
   * once); a ready one every periodSeconds (default 10), and it turns unready only after
   * failureThreshold (default 3) failures in a row, each a timeoutSeconds (default 1) wait. One
   * slow answer from a busy process does not take a pod out of its Service.
   */
  private async probe(pod: V1Pod, running: RunningPod): Promise<void> {
    if (running.process === undefined) return;
    const readiness = pod.spec!.containers[0]!.readinessProbe;
    const probe = readiness?.httpGet;
    if (probe === undefined) {
      running.ready = true;
      return;
    }
    if (running.ready && Date.now() - running.lastProbeMs < 1000 * (readiness!.periodSeconds ?? 10)) return;
    running.lastProbeMs = Date.now();
    const ports = pod.spec!.containers[0]!.ports ?? [];
    const port = typeof probe.port === 'number' ? probe.port : ports.find((p) => p.name === probe.port)?.containerPort ?? Number(probe.port);
    let ok = false;
    try {
      const response = await fetch(`http://${running.ip}:${port}${probe.path ?? '/'}`, { signal: AbortSignal.timeout(1000 * (readiness!.timeoutSeconds ?? 1)) });
      ok = response.ok;
    } catch {
      ok = false;
    }
    running.probeFailures = ok ? 0 : running.probeFailures + 1;
    if (ok) running.ready = true;
    else if (running.probeFailures >= (readiness!.failureThreshold ?? 3)) running.ready = false;
  }

  /** Writes the pod's status when it changed: phase, IPs, Ready, the container's state and restarts. */
  private async report(pod: V1Pod, running: RunningPod): Promise<void> {
    const container = pod.spec!.containers[0]!;
    const state = running.process !== undefined
      ? { running: { startedAt: running.startedAt } }
      : { waiting: { reason: running.waiting ?? 'ContainerCreating' } };
    const now = new Date();
    const ready = running.ready ? 'True' : 'False';
    const previous = pod.status?.conditions?.find((c) => c.type === 'Ready');
    const status: V1PodStatus = {
      phase: running.startedAt !== undefined ? 'Running' : 'Pending',
      podIP: running.ip, podIPs: [{ ip: running.ip }], hostIP: '127.0.0.1',
      startTime: pod.status?.startTime ?? now,
      conditions: [
        { type: 'PodScheduled', status: 'True' },
        { type: 'Initialized', status: 'True' },
        { type: 'ContainersReady', status: ready },
        { type: 'Ready', status: ready, lastTransitionTime: previous?.status === ready ? previous.lastTransitionTime : now },
      ],
      containerStatuses: [{
        name: container.name, image: container.image!, imageID: `test-kubelet://${container.image}`, ready: running.ready,
        restartCount: running.restarts, started: running.process !== undefined, state,
        ...(running.lastExit ? { lastState: { terminated: { exitCode: running.lastExit.code ?? 137, signal: running.lastExit.signal ? 9 : undefined, reason: 'Error' } } } : {}),
      }],
    };
    const summary = (s: V1PodStatus | undefined) => JSON.stringify([s?.phase, s?.podIP, s?.conditions?.find((c) => c.type === 'Ready')?.status, s?.containerStatuses?.[0]?.restartCount, Object.keys(s?.containerStatuses?.[0]?.state ?? {})]);
    if (summary(status) === summary(pod.status)) return;
    await this.core.replaceNamespacedPodStatus({ name: pod.metadata!.name!, namespace: pod.metadata!.namespace!, body: { ...pod, status } })
      .catch((error: unknown) => this.note(`status ${pod.metadata!.name}: ${String(error)}`));
  }

  /**
   * The stand-ins for cluster DNS and for a cloud load balancer: every pod's /etc/hosts maps each
   * Service's names to a ready pod it selects; a LoadBalancer Service gets an address of its own,
   * stable while its pods come and go (published as its ingress: the address partners dial), whose
   * connections are forwarded to a ready pod.
   */
  private async publishServices(services: V1Service[], pods: V1Pod[]): Promise<void> {
    const lines = ['127.0.0.1 localhost'];
    for (const service of services) {
      const selector = service.spec?.selector;
      if (selector === undefined) continue;
      const namespace = service.metadata!.namespace!;
      const name = service.metadata!.name!;
      const target = pods
        .filter((p) => p.metadata!.namespace === namespace && p.metadata!.deletionTimestamp === undefined && Object.entries(selector).every(([k, v]) => p.metadata!.labels?.[k] === v))
        .map((p) => this.pods.get(`${namespace}/${p.metadata!.name}`))
        .find((r) => r !== undefined && r.ready);
      if (service.spec?.type === 'LoadBalancer') await this.balance(service, target?.ip);
      if (target === undefined) continue;
      lines.push(`${target.ip} ${name}.${namespace}.svc.cluster.local ${name}.${namespace}.svc ${name}.${namespace} ${name}`);
    }
    for (const [key, balancer] of this.balancers) {
      if (!services.some((s) => `${s.metadata!.namespace}/${s.metadata!.name}` === key && s.spec?.type === 'LoadBalancer')) {
        for (const server of balancer.servers) server.close();
        this.balancers.delete(key);
      }
    }
    for (const running of this.pods.values()) {
      // Same file, same inode (the pod's bind mount sees the new content); its own name first.
      await writeFile(running.hostsFile, `${[...lines, `${running.ip} ${running.dir.split('_').pop()}`].join('\n')}\n`);
    }
  }

  private async balance(service: V1Service, endpoint: string | undefined): Promise<void> {
    const namespace = service.metadata!.namespace!;
    const name = service.metadata!.name!;
    const key = `${namespace}/${name}`;
    let balancer = this.balancers.get(key);
    if (balancer === undefined) {
      const n = this.nextBalancer++;
      balancer = { ip: `127.${this.options.subnet}.250.${n}`, servers: [], endpoint: undefined, targets: new Map() };
      this.balancers.set(key, balancer);
      const own = balancer;
      for (const port of service.spec?.ports ?? []) {
        own.targets.set(port.port, typeof port.targetPort === 'number' ? port.targetPort : port.port);
        const server = createServer((socket) => {
          const to = own.endpoint;
          if (to === undefined) return socket.destroy();
          const upstream = connect(own.targets.get(port.port)!, to);
          socket.pipe(upstream).pipe(socket);
          const close = () => {
            socket.destroy();
            upstream.destroy();
          };
          socket.on('error', close);
          upstream.on('error', close);
        });
        server.on('error', (error) => this.note(`balancer ${key}: ${String(error)}`));
        server.listen(port.port, own.ip);
        own.servers.push(server);
      }
    }
    balancer.endpoint = endpoint;
    if (service.status?.loadBalancer?.ingress?.[0]?.ip !== balancer.ip) {
      await this.core.patchNamespacedServiceStatus({ name, namespace, body: { status: { loadBalancer: { ingress: [{ ip: balancer.ip }] } } } }, mergePatch)
        .catch((error: unknown) => this.note(`service ${name}: ${String(error)}`));
    }
  }

  private async kill(running: RunningPod, graceMs: number): Promise<void> {
    running.stopping = true;
    if (running.restartTimer !== undefined) clearTimeout(running.restartTimer);
    const child = running.process;
    if (child === undefined || child.pid === undefined) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      return;
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    }, graceMs);
    await exited;
    clearTimeout(timer);
  }
}

/** Single-quotes a string for /bin/sh. */
function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
