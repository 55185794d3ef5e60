import { describe, expect, it } from '@jest/globals';
import { KubeConfig } from '@kubernetes/client-node';

// @kubernetes/client-node 1.x is ESM-only: this test proves that jest runs the tests as ESM.
describe('@kubernetes/client-node', () => {
  it('loads a kubeconfig from YAML and resolves the current cluster', () => {
    const config = new KubeConfig();
    config.loadFromString(`
apiVersion: v1
kind: Config
clusters: [{name: owner-a, cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: secret}}]
contexts: [{name: a, context: {cluster: owner-a, user: admin}}]
current-context: a
`);
    expect(config.getCurrentCluster()?.server).toBe('https://127.0.0.1:6443');
    expect(config.getCurrentUser()?.token).toBe('secret');
  });
});
