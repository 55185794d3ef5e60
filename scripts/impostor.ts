// An impostor for the local federation: it knows a run's public facts (run id, endpoints, public
// keys) but holds no key that any peer accepted. It tries to get in two ways and logs what each
// target answered. `node dist/scripts/impostor.js --run R --target HOST:PORT --target-key B64 --claim-key B64`
import { parseArgs } from 'node:util';
import { Registry } from 'prom-client';
import { FederationService } from '../proto/gen/concord/v1/federation_pb.js';
import { createClient, RpcError } from '../proto/grpc/index.js';
import { PeerClient } from '../operator/src/federation/client.js';
import { freshNonce, handshakeTranscript, signTranscript } from '../operator/src/federation/handshake.js';
import { generateIdentity, parsePublicKey } from '../operator/src/federation/identity.js';
import { PROTOCOL } from '../operator/src/federation/limits.js';
import { jsonLogger } from '../operator/src/log.js';
import { createFederationMetrics } from '../operator/src/metrics/federation.js';

const { values } = parseArgs({ options: { run: { type: 'string' }, target: { type: 'string' }, 'target-key': { type: 'string' }, 'claim-key': { type: 'string' } } });
const runId = values.run!;
const target = values.target!;
const targetKey = parsePublicKey(values['target-key']!);
const claimedKey = parsePublicKey(values['claim-key']!);
const self = generateIdentity();
const log = jsonLogger({ name: 'impostor' });

function outcome(error: unknown) {
  return error instanceof RpcError ? { refused: true, code: error.codeName, reason: error.reason, detail: error.detail } : { refused: false, detail: String(error) };
}

// 1. With its own key, which no Peer lists.
const client = new PeerClient({ identity: self, runId, address: target, serverKey: targetKey, metrics: createFederationMetrics(new Registry()) });
try {
  await client.handshake();
  log.error('attempt', { attempt: 'own-key', refused: false });
} catch (error) {
  log.info('attempt', { attempt: 'own-key', ...outcome(error) });
} finally {
  client.close();
}

// 2. Claiming a listed peer's public key, signing with its own private key.
const raw = createClient(FederationService, target);
try {
  const clientNonce = freshNonce();
  const hello = await raw.hello({ protocol: PROTOCOL, runId, clientKey: claimedKey, clientNonce });
  const transcript = handshakeTranscript({ runId, clientKey: claimedKey, serverKey: hello.serverKey, clientNonce, serverNonce: hello.serverNonce });
  await raw.finish({ serverNonce: hello.serverNonce, clientSignature: signTranscript(self, 'client', transcript) });
  log.error('attempt', { attempt: 'claimed-key', refused: false });
} catch (error) {
  log.info('attempt', { attempt: 'claimed-key', ...outcome(error) });
} finally {
  raw.close();
}
