import { createServer } from 'node:net';

/** Linux's default ephemeral range starts at 32768: outgoing connections take their local ports
 * from there, so a port chosen below it is not taken by some connection meanwhile. */
const LOW = 20_000;
const HIGH = 32_767;

/**
 * A TCP port free on 127.0.0.1 right now (the probe closes before returning). For launchers and
 * tests that must write a peer's port into another's config before either listens, or restart a
 * process on the same port; a server that can bind port 0 itself should do that instead.
 *
 * Chosen below the ephemeral range: a port the OS hands out for port 0 is one it also gives to
 * outgoing connections, and a coordinator restarted on its old port found it taken by a partner's
 * reconnect attempt (EADDRINUSE). Falls back to the OS's choice if no candidate binds.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 32; attempt++) {
    const candidate = LOW + Math.floor(Math.random() * (HIGH - LOW + 1));
    if ((await bind(candidate)) !== undefined) return candidate;
  }
  const port = await bind(0);
  if (port === undefined) throw new Error('freePort: no TCP port could be bound on 127.0.0.1');
  return port;
}

/** Binds `port` on 127.0.0.1 and releases it: the port bound, or undefined if it was taken. */
function bind(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(undefined));
    probe.listen(port, '127.0.0.1', () => {
      const bound = (probe.address() as { port: number }).port;
      probe.close(() => resolve(bound));
    });
  });
}
