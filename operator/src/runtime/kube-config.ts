import { createHash } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';

type RequestContext = Parameters<KubeConfig['applySecurityAuthentication']>[0];

/** The TLS options that decide which connections an agent may reuse. */
const IDENTITY_OPTIONS = ['ca', 'cert', 'key', 'pfx', 'passphrase', 'rejectUnauthorized', 'servername'] as const;

/**
 * A KubeConfig whose API clients reuse their connections. @kubernetes/client-node 1.x gives
 * every request a new https.Agent, so every request opened a new TLS connection: a handshake
 * (an RSA signature on the API server, key exchange on both sides) per call. Measured with 500
 * TrainingRuns (docs/benchmarks.md), handshakes were about a quarter of the API server's CPU.
 * This keeps one keep-alive agent per set of TLS options (a rotated client certificate gets a
 * new one) and gives it to every request; credentials that travel in headers (tokens) are set
 * per request as before. Watches open their own long-lived connections and are unaffected. Idle
 * kept connections do not hold a process open (Node unrefs an agent's free sockets).
 */
export class KeepAliveKubeConfig extends KubeConfig {
  private readonly agents = new Map<string, http.Agent>();

  override async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(context);
    const fresh = context.getAgent();
    if (fresh === undefined || fresh.constructor !== https.Agent) return; // proxies: as client-node made them
    const options = (fresh as https.Agent & { options: https.AgentOptions }).options;
    const key = createHash('sha256').update(JSON.stringify(IDENTITY_OPTIONS.map((name) => describe(options[name])))).digest('hex');
    let agent = this.agents.get(key);
    if (agent === undefined) {
      agent = new https.Agent({ ...options, keepAlive: true });
      this.agents.set(key, agent);
    }
    context.setAgent(agent);
  }
}

function describe(value: unknown): unknown {
  if (Buffer.isBuffer(value)) return value.toString('base64');
  if (Array.isArray(value)) return value.map(describe);
  return value;
}
