import { describe, expect, it } from '@jest/globals';
import * as https from 'node:https';
import { HttpMethod, RequestContext } from '@kubernetes/client-node';
import { KeepAliveKubeConfig } from '../../operator/src/runtime/kube-config.js';

/** A kubeconfig for https://127.0.0.1:6443 with a bearer token, and CA data `ca`. */
function kubeconfig(ca: string, token = 'secret'): string {
  return JSON.stringify({
    apiVersion: 'v1', kind: 'Config', 'current-context': 'c',
    clusters: [{ name: 'k', cluster: { server: 'https://127.0.0.1:6443', 'certificate-authority-data': Buffer.from(ca).toString('base64') } }],
    users: [{ name: 'u', user: { token } }],
    contexts: [{ name: 'c', context: { cluster: 'k', user: 'u' } }],
  });
}

async function agentFor(config: KeepAliveKubeConfig): Promise<{ agent: https.Agent; headers: Record<string, string> }> {
  const context = new RequestContext('https://127.0.0.1:6443/api/v1/namespaces', HttpMethod.GET);
  await config.applySecurityAuthentication(context);
  return { agent: context.getAgent() as https.Agent, headers: context.getHeaders() };
}

describe('KeepAliveKubeConfig', () => {
  it('gives every request the same keep-alive agent while the TLS options stay the same', async () => {
    const config = new KeepAliveKubeConfig();
    config.loadFromString(kubeconfig('CA one'));
    const first = await agentFor(config);
    const second = await agentFor(config);
    expect(second.agent).toBe(first.agent);
    expect((first.agent as https.Agent & { keepAlive: boolean }).keepAlive).toBe(true);
    expect(first.agent.options.ca).toEqual(Buffer.from('CA one'));
    // Credentials in headers are still set per request.
    expect(second.headers.Authorization).toBe('Bearer secret');
  });

  it('makes a new agent when the TLS options change (another CA), and keeps each config apart', async () => {
    const config = new KeepAliveKubeConfig();
    config.loadFromString(kubeconfig('CA one'));
    const before = await agentFor(config);
    config.loadFromString(kubeconfig('CA two'));
    const after = await agentFor(config);
    expect(after.agent).not.toBe(before.agent);
    expect(after.agent.options.ca).toEqual(Buffer.from('CA two'));
    const other = new KeepAliveKubeConfig();
    other.loadFromString(kubeconfig('CA two'));
    expect((await agentFor(other)).agent).not.toBe(after.agent);
  });
});
