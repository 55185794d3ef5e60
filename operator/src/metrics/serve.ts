// The HTTP endpoint Prometheus scrapes: GET /metrics in the text exposition format, /healthz
// for probes, and the JSON routes its owner adds (the coordinator's /status, the operator's
// /readyz). Nothing else is served.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface MetricsServer {
  /** `host:port` actually bound. */
  address: string;
  close(): Promise<void>;
}

/** An extra GET route: its answer's status and body (an object is sent as JSON). */
export type Route = () => { status: number; body: string | object } | Promise<{ status: number; body: string | object }>;

export async function serveMetrics(registry: Registry, host: string, port: number, routes: Record<string, Route> = {}): Promise<MetricsServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    const route = path !== undefined && Object.hasOwn(routes, path) ? routes[path] : undefined;
    if (route !== undefined) {
      Promise.resolve().then(route).then(
        ({ status, body }) => typeof body === 'string'
          ? response.writeHead(status, { 'content-type': 'text/plain' }).end(body)
          : response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body)),
        (error: unknown) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(error)}\n`),
      );
      return;
    }
    if (path !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (error: unknown) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(error)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    address: `${host}:${bound}`,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
