/**
 * A plan's peak device memory, estimated from the model's shape before any work: the original
 * model (kept for the baselines and the gates), the last accepted model, and the largest of the
 * stages an iteration runs — scoring calibration data, each tuner's tuning, evaluation by
 * decoding. Models only shrink as the run goes, so the original's shape bounds them all.
 */
import { decodingBytes, type Footprint, footprint, forwardBytes, weightBytes } from "../model/Footprint.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import type { Tuner } from "../tune/Tuner.ts"
import { type Plan, planSeqLen } from "./Plan.ts"

/** Sequences per batch when scoring calibration data (Pruning.ts). */
export const calibrationBatchSize = 32

export const planFootprint = (
  plan: Plan,
  config: ModelConfig,
  tuners: ReadonlyArray<Tuner<unknown, unknown>>,
  evaluationBatchSize: number
): Footprint => {
  const w = weightBytes(config)
  const seqLen = planSeqLen(plan)
  const stages: Array<[string, Footprint]> = [
    ["scoring", footprint({ "pruned copy": w, "scoring pass": forwardBytes(config, calibrationBatchSize, seqLen) })],
    ["evaluation", footprint({ "evaluated model": w, decoding: decodingBytes(config, evaluationBatchSize, seqLen) })],
    ...tuners.map((t): [string, Footprint] => [`${t.kind} tuning`, t.footprint(config)])
  ]
  const [name, peak] = stages.reduce((a, b) => (b[1].bytes > a[1].bytes ? b : a))
  return footprint({
    "original model": w,
    "last accepted model": w,
    ...Object.fromEntries(Object.entries(peak.parts).map(([part, bytes]) => [`${name}: ${part}`, bytes]))
  })
}

/** What a user can change when a plan does not fit. */
export const planMemoryAdvice =
  "Lower tuner.batchSize or tuner.maxSeqLen (each tuning step's activations grow with both), evaluate in smaller " +
  "batches, or prune a smaller model; `simmer plan check` shows the estimate."
