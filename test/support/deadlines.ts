// Every deadline a test waits on, and every jest timeout in test/, in one place (issue #14).
//
// A deadline only bounds a failure: a passing test waits for a condition (a status, a log line, a
// port, a round), never for the deadline, so these err large. Each is sized for a loaded machine,
// where things take two or three times as long as on an idle one (the comment says what idle
// looks like), and all are multiplied by CONCORD_TEST_TIME_SCALE (default 1) for slower machines
// still. A jest timeout is the sum of the deadlines of the waits inside its test or hook, plus a
// margin (`within`), so a wait's own message, naming what it waited for, is what a failure shows.
//
// No test sleeps for a time sized to the machine: see docs/development.md, "Deadlines in tests".

/** CONCORD_TEST_TIME_SCALE as a factor: unset or empty is 1; anything but a positive number throws. */
export function timeScale(raw: string | undefined): number {
  if (raw === undefined || raw.trim() === '') return 1;
  const scale = Number(raw);
  if (!Number.isFinite(scale) || scale <= 0) throw new Error(`CONCORD_TEST_TIME_SCALE must be a positive number (a factor for every test deadline), got "${raw}"`);
  return scale;
}

export const TIME_SCALE = timeScale(process.env.CONCORD_TEST_TIME_SCALE);
const scaled = (ms: number): number => Math.round(ms * TIME_SCALE);

// ---- Servers, processes and calls on loopback ----

/** A server on loopback to listen and answer (a coordinator's endpoints, a metrics server): milliseconds idle. */
export const SERVER_START_MS = scaled(30_000);
/** Trainer agents to join a gateway: each starts a worker thread that loads ONNX Runtime and builds the training graph, 1-3 s idle. */
export const TRAINERS_JOIN_MS = scaled(60_000);
/** Worker threads to start and do a few seconds' work: a trainer thread training and evaluating tens of steps of the tiny model, the parallel encoder's workers. */
export const WORKERS_MS = scaled(60_000);
/**
 * A call, stream or trainer task the test expects to finish, as a deadline handed to product code
 * (a call's timeoutMs, a task's deadlineUnixMs): tens of MiB over loopback or a few dozen inner steps, a second or two idle.
 */
export const CALL_MS = scaled(60_000);
/**
 * A call deadline a test lets expire on purpose: long enough for the call to reach its handler on a
 * loaded machine (milliseconds idle); the handler then waits for the cancellation itself, so the
 * assertions do not depend on this size.
 */
export const EXPIRING_CALL_MS = scaled(500);
/**
 * How late something may end after a given time on a loaded machine: a timer firing, a training
 * step running over a deadline, a message crossing threads (milliseconds idle). For assertions
 * that something ended soon after a time, and for a short timer to fire at all.
 */
export const LATE_MS = scaled(5_000);
/**
 * A training window a test sets to see training stop at it: long enough that the first step of the
 * tiny model (milliseconds) starts inside it on a loaded machine, the trainer's worker already up.
 */
export const TRAIN_WINDOW_MS = scaled(2_000);
/**
 * A bound on single-threaded work of about a second on an idle core (initialising 4M parameters,
 * BPE-encoding 400 KB as one piece): it catches an algorithm gone quadratic (minutes), not a loaded machine.
 */
export const QUICK_WORK_MS = scaled(10_000);
/** A command-line tool run to its end: helm lint/template/install, kubectl, promtool (under a second idle). */
export const COMMAND_MS = scaled(60_000);
/** A CLI training run in its own process (ORT start, corpus, 40 steps of the tiny model, two evaluations, plots): ~5 s idle. */
export const TRAINING_PROCESS_MS = scaled(120_000);
/**
 * `npm start`'s whole run as the local-federation test asks for it: eight processes, 4 rounds of a
 * 6 s window and 4 s grace, one coordinator killed and restarted; about a minute and a half idle.
 */
export const LOCAL_FEDERATION_MS = scaled(300_000);
/**
 * `npm run study -- federation` as its runner test asks for it: the centralised arm and two local
 * federations (four and six clusters) of 3 short rounds each, in their own processes; under a
 * minute idle.
 */
export const FEDERATION_STUDY_MS = scaled(300_000);
/** Prometheus to answer /-/ready (it opens its TSDB): a second or two idle. */
export const PROMETHEUS_READY_MS = scaled(60_000);
/** Prometheus (1 s scrape interval) to have scraped every target twice more: 2 s idle. */
export const SCRAPES_MS = scaled(60_000);

// ---- Federation rounds (test/support/federation-run.ts: in-process coordinators and trainers) ----

/**
 * One outer round of the test federations, whose window (3-4 s) and grace (2-3 s) the tests set:
 * about 2 s idle when every member takes part (a round ends once all contributions and manifests
 * are in), up to the window and twice the grace when one is silent (the round's common deadline).
 */
export const ROUND_MS = scaled(30_000);
/** `n` rounds, one after the other. */
export const roundsMs = (n: number): number => n * ROUND_MS;
/** startFederation: each cluster's coordinator starts and waits for its trainer, one cluster after the other. */
export const federationStartMs = (clusters: number): number => clusters * TRAINERS_JOIN_MS;
/** A whole federation run of `rounds` rounds: one round more for the start (peers aligning) and the end (the last checkpoint). */
export const federationRunMs = (rounds: number): number => roundsMs(rounds + 1);

// ---- A real Kubernetes API server (scripts/kube) and the operator ----

/**
 * startCluster and installCrds: start.sh's own deadlines (etcd and kube-apiserver up to 5 tries
 * each on a port clash, 60 s for readyz, 60 s for the controller manager) and waitForCrds' (4 × 30 s);
 * about 5 s idle.
 */
export const API_SERVER_START_MS = scaled(15 * 60_000);
/** cluster.restartApiServer(): its own deadlines in scripts/kube/cluster.ts (10 s to die, 60 s for readyz). */
export const API_SERVER_RESTART_MS = scaled(70_000);
/** waitForCrds (scripts/kube/cluster.ts) after a helm install: its own deadlines, 4 × 30 s; a second or two idle. */
export const CRDS_MS = scaled(120_000);
/** An operator to lead: the tests' leases last 3 s, so a takeover waits for the old one to expire; a retry every 0.5 s. */
export const LEADER_MS = scaled(30_000);
/**
 * An operator reconcile, seen through the API server (a child object, a status condition, a
 * config change): watch, work queue and a few API calls, under a second idle; failed reconciles
 * retry with a backoff up to 2 s (test/support/operator.ts).
 */
export const RECONCILE_MS = scaled(60_000);
/**
 * kube-controller-manager's garbage collector to delete a deleted run's children: it watches a
 * custom resource only after its discovery resync (30 s), then deletes within seconds.
 */
export const GARBAGE_COLLECTION_MS = scaled(120_000);

// ---- End to end (test/e2e: the chart in three API servers, pods run by the test kubelet) ----

/** The chart's operator, itself a pod the test kubelet starts, to lead and publish a run's key and federation address: ~20 s idle. */
export const OPERATOR_POD_MS = scaled(180_000);
/** A pod recreated by its controller, started by the test kubelet (polls every 0.3 s) and passing its readiness probe: seconds idle. */
export const POD_READY_MS = scaled(120_000);
/** One round of the e2e run: an 8 s window and a 6 s grace, trainers in pods, three API servers and kubelets on the machine. */
export const E2E_ROUND_MS = scaled(45_000);

// ---- Teardown ----

/** Stopping what a suite started: servers (grace up to 0.5 s), worker threads, an API server and etcd (stop.sh waits up to 5 s a process). */
export const TEARDOWN_MS = scaled(60_000);

// ---- Jest timeouts ----

/** What a test does between its waits (setup, assertions, calls without a deadline of their own). */
export const JEST_MARGIN_MS = scaled(30_000);

/** A jest timeout for a test or hook whose waits have these deadlines: their sum and a margin. */
export function within(...waits: number[]): number {
  return waits.reduce((sum, ms) => sum + ms, 0) + JEST_MARGIN_MS;
}

/**
 * The default per-test and per-hook timeout (test/support/jest-setup.ts sets it for every file):
 * a test with no wait of its own, pure logic or a few loopback calls, a worker thread or two.
 */
export const DEFAULT_TEST_MS = within(WORKERS_MS);
