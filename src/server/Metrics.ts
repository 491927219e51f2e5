/**
 * /metrics in the Prometheus text format: runs by status, queue depth, what the running runs
 * do (tuning tokens per second, seconds per step, the last evaluation's seconds), and the
 * process (resident memory, live tensors), so an operator can graph and alert on the daemon.
 */
import type { RunStatus } from "../services/JobStore.ts"
import type { Progress } from "./Api.ts"

export interface MetricsSnapshot {
  readonly runsByStatus: Readonly<Record<RunStatus, number>>
  readonly running: ReadonlyArray<Progress | undefined>
  readonly lastEvaluationSeconds: number | undefined
  readonly residentBytes: number
  readonly tensors: number
}

const metric = (name: string, help: string, samples: ReadonlyArray<[labels: string, value: number]>) =>
  [`# HELP ${name} ${help}`, `# TYPE ${name} gauge`, ...samples.map(([labels, value]) => `${name}${labels} ${Number.isFinite(value) ? value : 0}`)].join("\n")

export const renderMetrics = (snapshot: MetricsSnapshot): string => {
  const tunings = snapshot.running.flatMap((p) => (p?.tuning !== undefined ? [p.tuning] : []))
  const stepSeconds = tunings.filter((t) => t.stepsPerSecond > 0).map((t) => 1 / t.stepsPerSecond)
  return [
    metric("simmer_runs", "Runs by status.", Object.entries(snapshot.runsByStatus).map(([status, n]) => [`{status="${status}"}`, n])),
    metric("simmer_queue_depth", "Runs waiting to start.", [["", snapshot.runsByStatus.queued]]),
    metric("simmer_tuning_tokens_per_second", "Tokens per second tuned by all running runs together.", [["", tunings.reduce((a, t) => a + t.tokensPerSecond, 0)]]),
    metric("simmer_step_seconds", "Mean seconds per tuning step over the running runs that tune.", [["", stepSeconds.length > 0 ? stepSeconds.reduce((a, b) => a + b, 0) / stepSeconds.length : 0]]),
    metric("simmer_evaluation_seconds", "Seconds the last evaluation of any run took.", [["", snapshot.lastEvaluationSeconds ?? 0]]),
    metric("process_resident_memory_bytes", "Resident memory of the daemon process.", [["", snapshot.residentBytes]]),
    metric("simmer_tensors", "Live TensorFlow.js tensors in the daemon process.", [["", snapshot.tensors]])
  ].join("\n") + "\n"
}
