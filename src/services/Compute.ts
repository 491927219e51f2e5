/**
 * Compute: the TensorFlow.js backend simmer runs on. Everything that touches tensors requires
 * it, so a program cannot build a model before a backend is chosen and initialised. The live
 * implementation (layers/Compute.ts) picks and initialises the backend.
 */
import { Context, Schema } from "effect"

export const BackendNames = ["tensorflow", "wasm", "cpu"] as const
export type BackendName = (typeof BackendNames)[number]

export class Compute extends Context.Service<Compute, {
  /** The active tfjs backend. */
  readonly backend: BackendName
  /** Human-readable detail: package and device ("tfjs-node-gpu (CUDA)", "wasm, SIMD, 1 thread"). */
  readonly description: string
}>()("simmer/Compute") {}

export class BackendUnavailable extends Schema.TaggedError<BackendUnavailable>()("BackendUnavailable", {
  backend: Schema.String,
  message: Schema.String
}) {}
