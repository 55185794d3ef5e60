import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { AppsV1Api, AuthorizationV1Api, KubeConfig, RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { PORTS } from '../../operator/src/controllers/trainingrun/names.js';
import type { Operator } from '../../operator/src/manager.js';
import { startCluster, waitForCrds, type TestCluster } from '../../scripts/kube/cluster.js';
import { API_SERVER_START_MS, COMMAND_MS, CRDS_MS, LEADER_MS, RECONCILE_MS, TEARDOWN_MS, within } from '../support/deadlines.js';
import { getRun, startOperator, trainingRun } from '../support/operator.js';
import { waitFor } from '../support/wait.js';

// Every wait below has its own deadline (test/support/deadlines.ts); a test's own limit is above
// their sum: three helm runs at most in one test here, unless the test says otherwise.
jest.setTimeout(within(3 * COMMAND_MS));

const execFileAsync = promisify(execFile);
const root = new URL('../../', import.meta.url).pathname;
const chart = join(root, 'charts/concord');
const helm = (...args: string[]) => execFileAsync(join(root, 'scripts/helm/helm.sh'), args, { maxBuffer: 32 * 1024 * 1024 }).then(
  ({ stdout, stderr }) => ({ code: 0, out: stdout, err: stderr }),
  (error: { code?: number; stdout?: string; stderr?: string }) => ({ code: error.code ?? 1, out: error.stdout ?? '', err: error.stderr ?? '' }),
);

type Manifest = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [key: string]: unknown };

async function render(...args: string[]): Promise<Manifest[]> {
  const result = await helm('template', 'concord', chart, '--namespace', 'concord-system', ...args);
  if (result.code !== 0) throw new Error(result.err);
  return parseAllDocuments(result.out).map((d) => d.toJSON() as Manifest).filter((m) => m !== null);
}

const find = (objects: Manifest[], kind: string, name?: string) => objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
const values = (file: string) => ['-f', join(chart, 'ci', file)];

// The rules the operator needs: the verbs its code uses, nothing more (docs/operator.md).
const RULES = [
  { apiGroups: ['concord.dev'], resources: ['trainingruns', 'peers'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: ['concord.dev'], resources: ['trainingruns/status', 'peers/status'], verbs: ['update'] },
  { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'create'] },
  { apiGroups: [''], resources: ['configmaps', 'services', 'persistentvolumeclaims'], verbs: ['list', 'watch', 'create', 'patch'] },
  { apiGroups: ['apps'], resources: ['deployments'], verbs: ['list', 'watch', 'create', 'patch'] },
  { apiGroups: ['apps'], resources: ['statefulsets'], verbs: ['list', 'watch', 'create', 'patch', 'delete'] },
  { apiGroups: [''], resources: ['events'], verbs: ['create'] },
];

describe('helm chart: lint and templates', () => {
  it('passes helm lint --strict with the default values and every values file of ci/', async () => {
    for (const args of [[], values('all-on-values.yaml'), values('namespaced-values.yaml')]) {
      const result = await helm('lint', '--strict', chart, ...args);
      expect(`${result.out}${result.err}`).toContain('1 chart(s) linted, 0 chart(s) failed');
      expect(result.code).toBe(0);
    }
  });

  it('renders the operator locked down, with leader election, probes, the heap cap and both images', async () => {
    const objects = await render();
    const [deployment] = find(objects, 'Deployment') as Array<Manifest & { spec: any }>;
    const pod = deployment!.spec.template.spec;
    const container = pod.containers[0];
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(container.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(container.args).toEqual(expect.arrayContaining([
      '--leader-elect', '--leader-election-namespace=concord-system', '--coordinator-image=ghcr.io/concord-dev/concord-operator:0.1.0',
      '--trainer-image=ghcr.io/concord-dev/concord-trainer:0.1.0',
    ]));
    expect(container.env).toContainEqual({ name: 'NODE_OPTIONS', value: '--max-old-space-size=160' });
    expect(container.livenessProbe.httpGet.path).toBe('/healthz');
    expect(container.readinessProbe.httpGet.path).toBe('/readyz');
    expect(container.resources.limits.memory).toBe('256Mi');
    expect(pod.serviceAccountName).toBe('concord');
    // Off by default: Prometheus Operator objects, the dashboard, the NetworkPolicy.
    for (const kind of ['ServiceMonitor', 'PodMonitor', 'NetworkPolicy']) expect(find(objects, kind)).toEqual([]);
    expect(find(objects, 'ConfigMap')).toEqual([]);
  });

  it('grants exactly the verbs the operator uses: cluster-wide by default, a Role when it watches one namespace', async () => {
    const cluster = await render();
    expect((find(cluster, 'ClusterRole')[0] as any).rules).toEqual(RULES);
    expect((find(cluster, 'Role', 'concord-leader-election')[0] as any).rules).toEqual([{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] }]);
    expect((find(cluster, 'ClusterRoleBinding')[0] as any).subjects).toEqual([{ kind: 'ServiceAccount', name: 'concord', namespace: 'concord-system' }]);
    const namespaced = await render(...values('namespaced-values.yaml'));
    expect(find(namespaced, 'ClusterRole')).toEqual([]);
    const [role] = find(namespaced, 'Role') as any[];
    expect(role.metadata.namespace).toBe('ml-team');
    expect(role.rules).toEqual(RULES);
    expect(find(namespaced, 'Role')).toHaveLength(1);
    expect((find(namespaced, 'Deployment')[0] as any).spec.template.spec.containers[0].args).toContain('--namespace=ml-team');
    expect((find(namespaced, 'Deployment')[0] as any).spec.template.spec.serviceAccountName).toBe('concord-sa');
    expect(find(namespaced, 'CustomResourceDefinition')).toEqual([]);
    expect(find(namespaced, 'Service')).toEqual([]);
  });

  it('puts the CRDs of crds/ in the chart unchanged, behind crds.enabled', async () => {
    const crds = find(await render(), 'CustomResourceDefinition');
    expect(crds.map((c) => c.metadata.name).sort()).toEqual(['peers.concord.dev', 'trainingruns.concord.dev']);
    for (const crd of crds) {
      const file = crd.metadata.name === 'peers.concord.dev' ? 'concord.dev_peers.yaml' : 'concord.dev_trainingruns.yaml';
      expect(crd).toEqual(parseAllDocuments(readFileSync(join(root, 'crds', file), 'utf8'))[0]!.toJSON());
    }
  });

  it('with every option on: labels everywhere, monitors, dashboard, NetworkPolicy on the operator\'s ports', async () => {
    const objects = await render(...values('all-on-values.yaml'));
    for (const object of objects.filter((o) => o.kind !== 'CustomResourceDefinition')) {
      expect(object.metadata.labels).toMatchObject({ team: 'ml-platform', 'app.kubernetes.io/instance': 'concord' });
      expect(object.metadata.name.startsWith('concord-op')).toBe(true);
    }
    expect((find(objects, 'Deployment')[0] as any).spec.replicas).toBe(2);
    expect((find(objects, 'Deployment')[0] as any).spec.template.spec.containers[0].image).toBe('ghcr.io/concord-dev/concord-operator:1.2.3');
    expect(find(objects, 'ServiceMonitor')[0]!.metadata.labels).toMatchObject({ release: 'kube-prometheus' });
    expect((find(objects, 'PodMonitor')[0] as any).spec.selector.matchLabels).toEqual({ 'app.kubernetes.io/managed-by': 'concord-operator', 'app.kubernetes.io/component': 'coordinator' });
    const [dashboard] = find(objects, 'ConfigMap') as any[];
    expect(dashboard.metadata).toMatchObject({ namespace: 'monitoring', labels: { grafana_dashboard: '1' } });
    expect(JSON.parse(dashboard.data['concord.json']).uid).toBe('concord-overview');
    const [policy] = find(objects, 'NetworkPolicy') as any[];
    expect(policy.spec.ingress.map((rule: any) => rule.ports[0].port)).toEqual([7443, PORTS.trainers, PORTS.metrics]);
    expect(policy.spec.ingress[0].from).toEqual([{ ipBlock: { cidr: '203.0.113.0/24' } }]);
  });

  it('refuses two replicas without leader election', async () => {
    const result = await helm('template', 'concord', chart, '--set', 'operator.replicas=2', '--set', 'operator.leaderElection=false');
    expect(result.code).not.toBe(0);
    expect(result.err).toContain('operator.replicas > 1 needs operator.leaderElection: true');
  });
});

describe('helm install into a real API server', () => {
  let cluster: TestCluster;
  let operator: (Operator & { logLines: string[] }) | undefined;

  beforeAll(async () => {
    cluster = await startCluster();
  }, within(API_SERVER_START_MS));

  afterAll(async () => {
    await operator?.stop();
    await cluster?.stop();
  }, within(TEARDOWN_MS));

  it('installs the operator Deployment, its RBAC and the CRDs; the operator works with exactly that RBAC', async () => {
    // The test API server is 1.20: its OpenAPI does not know the CRDs' CEL rules (1.25+), which helm
    // would refuse client-side; the server itself ignores them (docs/install.md).
    const result = await helm('install', 'concord', chart, '--kubeconfig', cluster.kubeconfigPath, '--namespace', 'concord-system', '--create-namespace', '--disable-openapi-validation');
    expect(`${result.out}${result.err}`).toContain('STATUS: deployed');
    const apps = cluster.config.makeApiClient(AppsV1Api);
    const deployment = await apps.readNamespacedDeployment({ name: 'concord', namespace: 'concord-system' });
    expect(deployment.spec!.template.spec!.serviceAccountName).toBe('concord');
    const rbac = cluster.config.makeApiClient(RbacAuthorizationV1Api);
    expect((await rbac.readClusterRole({ name: 'concord' })).rules!.length).toBe(RULES.length);
    await rbac.readNamespacedRole({ name: 'concord-leader-election', namespace: 'concord-system' });
    await waitForCrds(cluster); // established, listable and in discovery

    // The operator, with the chart's ServiceAccount token instead of the admin's: RBAC is enough.
    const token = await cluster.core.createNamespacedServiceAccountToken({ name: 'concord', namespace: 'concord-system', body: { spec: { audiences: [], expirationSeconds: 3600 } } });
    const asOperator = new KubeConfig();
    asOperator.loadFromString(readFileSync(cluster.kubeconfigPath, 'utf8').replace(/token: .*/, `token: ${token.status!.token}`));
    operator = await startOperator({ ...cluster, config: asOperator }, { leaderElection: { namespace: 'concord-system', name: 'concord', leaseDurationMs: 3000, renewDeadlineMs: 2000, retryPeriodMs: 500 } });
    await waitFor(() => operator!.isLeader, LEADER_MS, 'the operator to lead');
    await cluster.objects.create(trainingRun('rbac-check'));
    await waitFor(async () => (await getRun(cluster, 'rbac-check')).status?.identity?.publicKey !== undefined, RECONCILE_MS, 'a run reconciled under the chart\'s RBAC');
    await apps.readNamespacedStatefulSet({ name: 'rbac-check-trainer-cpu', namespace: 'default' });
    expect(operator.logLines.join('')).not.toContain('forbidden');

    // Least privilege: what the operator never does, it may not do.
    const authz = cluster.config.makeApiClient(AuthorizationV1Api);
    const may = async (verb: string, resource: string, group = '') => (await authz.createSubjectAccessReview({
      body: { spec: { user: 'system:serviceaccount:concord-system:concord', resourceAttributes: { verb, resource, group, namespace: 'default' } } },
    })).status!.allowed;
    expect(await may('create', 'secrets')).toBe(true);
    expect(await may('list', 'secrets')).toBe(false);
    expect(await may('delete', 'secrets')).toBe(false);
    expect(await may('update', 'secrets')).toBe(false);
    expect(await may('delete', 'deployments', 'apps')).toBe(false);
    expect(await may('create', 'pods')).toBe(false);
  }, within(COMMAND_MS, CRDS_MS, LEADER_MS, RECONCILE_MS));
});
