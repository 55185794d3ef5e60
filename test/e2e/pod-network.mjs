// Loaded into every process the test kubelet runs (NODE_OPTIONS=--import=…): the stand-in for a
// pod's network namespace. All pods share this machine's network, so a server that asks for "all
// interfaces" (0.0.0.0, ::, or no host) is bound to the pod's own loopback address instead
// (CONCORD_TEST_POD_IP, 127.x.y.z, unique per pod), as if the pod had its own interface: two pods
// can then both listen on port 7443. Nothing else is changed. Names resolve through the pod's
// /etc/hosts, which the kubelet writes (the stand-in for cluster DNS).
import net from 'node:net';

const podIp = process.env.CONCORD_TEST_POD_IP;
if (podIp) {
  const listen = net.Server.prototype.listen;
  const anyHost = (host) => host === undefined || host === null || host === '' || host === '0.0.0.0' || host === '::' || host === '[::]';
  net.Server.prototype.listen = function (...args) {
    if (typeof args[0] === 'object' && args[0] !== null && !Array.isArray(args[0]) && 'port' in args[0]) {
      if (anyHost(args[0].host)) args[0] = { ...args[0], host: podIp };
    } else if (typeof args[0] === 'number' || (typeof args[0] === 'string' && /^\d+$/.test(args[0]))) {
      if (typeof args[1] !== 'string' || anyHost(args[1])) {
        if (typeof args[1] === 'string' || args[1] === undefined || args[1] === null) args[1] = podIp;
        else args.splice(1, 0, podIp);
      }
    }
    return listen.apply(this, args);
  };
}
