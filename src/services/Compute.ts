/**
 * Compute: the TensorFlow.js backend simmer runs on. Everything that touches tensors requires
 * it, so a program cannot build a model before a backend is chosen and initialised. Its layer
 * picks and initialises the backend (compute/Backend.ts).
 */
import { Context, Layer } from "effect"
import { type BackendName, type BackendUnavailable, selectBackend } from "../compute/Backend.ts"
import type { GpuAdapter } from "../compute/WebGpu.ts"

export class Compute extends Context.Service<Compute, {
  /** The active tfjs backend. */
  readonly backend: BackendName
  /** Human-readable detail: package and device ("tfjs-node-gpu (CUDA)", "wasm, SIMD, 1 thread"). */
  readonly description: string
  /** On webgpu: the adapter, its driver and its limits. */
  readonly adapter?: GpuAdapter
}>()("simmer/Compute") {
  /**
   * The backend `choice` names (else SIMMER_BACKEND, else the first of tensorflow, webgpu on a
   * hardware GPU, wasm, cpu that initialises), chosen and initialised when the layer is built.
   */
  static readonly layer = (choice?: string): Layer.Layer<Compute, BackendUnavailable> => Layer.effect(Compute, selectBackend(choice))
}
