/**
 * Kernels the tfjs wasm backend lacks, registered before training on wasm.
 *
 * UnsortedSegmentSum is the gradient of gather (the token embedding): without it a training
 * step on wasm throws. The sum runs in JavaScript over the backend's heap; it is O(N·D) adds
 * per step, negligible next to the matMuls.
 */
import * as tf from "@tensorflow/tfjs"
import { registerFastWasmKernels } from "./Overrides.ts"

interface WasmBackendLike {
  readSync(dataId: tf.DataId): tf.backend_util.BackendValues
  makeOutput(shape: Array<number>, dtype: tf.DataType): tf.TensorInfo
  typedArrayFromHeap(info: tf.TensorInfo): tf.backend_util.TypedArray
}

const unsortedSegmentSum: tf.KernelFunc = ({ inputs, attrs, backend }) => {
  const wasm = backend as unknown as WasmBackendLike
  const { x, segmentIds } = inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo }
  const numSegments = (attrs as { numSegments: number }).numSegments
  if (x.dtype !== "float32" && x.dtype !== "int32") {
    throw new Error(`UnsortedSegmentSum on wasm supports float32 and int32, got ${x.dtype}`)
  }
  const ids = wasm.readSync(segmentIds.dataId) as Int32Array
  const inner = x.shape.slice(segmentIds.shape.length).reduce((a, b) => a * b, 1)
  const outShape = [numSegments, ...x.shape.slice(segmentIds.shape.length)]
  const out = wasm.makeOutput(outShape, x.dtype)
  // Read the input after allocating: allocation may grow (and move) the wasm heap.
  const values = wasm.readSync(x.dataId) as Float32Array | Int32Array
  const result = wasm.typedArrayFromHeap(out)
  result.fill(0)
  for (let row = 0; row < ids.length; row++) {
    const segment = ids[row]
    if (segment < 0 || segment >= numSegments) continue // tf semantics: out-of-range ids are dropped
    const src = row * inner
    const dst = segment * inner
    for (let j = 0; j < inner; j++) result[dst + j] += values[src + j]
  }
  return out
}

let registered = false

export const registerWasmKernels = (): void => {
  registerFastWasmKernels()
  if (registered || tf.getKernel("UnsortedSegmentSum", "wasm") !== undefined) return
  tf.registerKernel({ kernelName: "UnsortedSegmentSum", backendName: "wasm", kernelFunc: unsortedSegmentSum })
  registered = true
}
