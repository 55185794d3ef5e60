// The coordinators' status reports, fetched by the TrainingRun controller (GET /status on each
// run's coordinator Service) and read by the Peer controller. Only the latest report per run is
// kept; a run that is gone takes its report with it.
import type { TrainingRun } from '../api/types.js';
import { REPORT_VERSION, type CoordinatorReport } from '../coordinator/report.js';
import { PORTS, names } from './trainingrun/names.js';

/** `host:port` of a run's coordinator /status (inside the cluster: its Service's DNS name). */
export type CoordinatorAddress = (run: TrainingRun) => string;

export const clusterDnsAddress: CoordinatorAddress = (run) => `${names.coordinator(run)}.${run.metadata.namespace}.svc:${PORTS.metrics}`;

export class ReportBook {
  private readonly reports = new Map<string, CoordinatorReport>();

  constructor(private readonly address: CoordinatorAddress = clusterDnsAddress, private readonly timeoutMs = 2_000) {}

  /** Asks the run's coordinator for its report; undefined when it does not answer usefully. */
  async fetch(run: TrainingRun): Promise<CoordinatorReport | undefined> {
    try {
      const response = await fetch(`http://${this.address(run)}/status`, { signal: AbortSignal.timeout(this.timeoutMs) });
      if (!response.ok) return undefined;
      const report = (await response.json()) as CoordinatorReport;
      // A report of another run (a misrouted address) must not become this run's status.
      if (report.apiVersion !== REPORT_VERSION || report.runId !== run.spec.runId) return undefined;
      return report;
    } catch {
      return undefined;
    }
  }

  set(key: string, report: CoordinatorReport | undefined): void {
    if (report === undefined) this.reports.delete(key);
    else this.reports.set(key, report);
  }

  get(key: string): CoordinatorReport | undefined {
    return this.reports.get(key);
  }
}
