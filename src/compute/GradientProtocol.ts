/**
 * Messages between the data-parallel Gradients layer and its workers, and the flat layout of
 * parameters (and of gradients) in shared memory: every tensor of paramSpecs, in that order and
 * in internal orientation, as float32.
 */
import * as tf from "@tensorflow/tfjs"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { paramSpecs } from "../model/Params.ts"
import { readFloatsAsync } from "../model/Read.ts"

export interface WorkerOptions {
  /** tfjs backend of the worker's engine. */
  readonly backend: string
}

export interface ComputeRequest {
  readonly type: "compute"
  readonly seq: number
  readonly config: ModelConfig
  /** All parameters (layout below); rebuilt by the worker when `weightsVersion` changes. */
  readonly weights: SharedArrayBuffer
  readonly weightsVersion: number
  /** Where this worker writes its gradients, already multiplied by `scale`. */
  readonly grads: SharedArrayBuffer
  /** This worker's rows of the batch. */
  readonly ids: Int32Array
  readonly targetWeights?: Float32Array
  readonly batchSize: number
  readonly seqLen: number
  readonly scale: number
}

export type WorkerReply =
  | { readonly type: "ready"; readonly description: string }
  | { readonly type: "done"; readonly seq: number; readonly loss: number; readonly targets: number }
  | { readonly type: "failed"; readonly seq?: number; readonly message: string }

export interface LayoutEntry {
  readonly name: string
  /** Internal (tfjs) shape. */
  readonly shape: ReadonlyArray<number>
  /** In float32 elements from the start of the buffer. */
  readonly offset: number
  readonly size: number
}

export interface ParamLayout {
  readonly entries: ReadonlyArray<LayoutEntry>
  readonly totalFloats: number
}

export const paramLayout = (config: ModelConfig): ParamLayout => {
  let offset = 0
  const entries = paramSpecs(config).map((spec) => {
    const shape = spec.transposed ? [spec.shape[1], spec.shape[0]] : [...spec.shape]
    const size = shape.reduce((a, b) => a * b, 1)
    const entry = { name: spec.name, shape, offset, size }
    offset += size
    return entry
  })
  return { entries, totalFloats: offset }
}

interface HeapBackend {
  typedArrayFromHeap(info: tf.TensorInfo): tf.backend_util.TypedArray
}

/**
 * Copies a float32 tensor into `target` at `offset` (elements). On wasm it reads the heap in
 * place (one copy instead of a read's two); elsewhere it reads asynchronously (WebGPU has no
 * synchronous read).
 */
export const copyTensorInto = async (tensor: tf.Tensor, target: Float32Array, offset: number): Promise<void> => {
  if (tf.getBackend() === "wasm") {
    target.set((tf.backend() as unknown as HeapBackend).typedArrayFromHeap(tensor) as Float32Array, offset)
  } else {
    target.set(await readFloatsAsync(tensor), offset)
  }
}
