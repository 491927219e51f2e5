/**
 * Replacements for tfjs-wasm kernels that cost far more than their work on the training path,
 * and the registration of all of simmer's fast wasm paths (Kernels.ts calls it).
 *
 * - Identity, and Cast to the same dtype: a shared reference instead of a copy (what the cpu
 *   backend and wasm's own Reshape do). The gradient tape clones every tensor it saves for the
 *   backward pass through Identity: on wasm one malloc and copy each, ~380 per training step
 *   of the reference model.
 * - GatherV2 (the token embedding): row copies in the heap. The built-in kernel took ~5 ms to
 *   gather 1024 rows of 128 floats (about 40 ns per element).
 *
 * Each replacement keeps the original's setup function (run when the backend initialises,
 * possibly after this registration) and falls back to it outside the cases handled here.
 */
import * as tf from "@tensorflow/tfjs"
import { registerWasmFused } from "./Fused.ts"
import { registerWasmGemm } from "./Gemm.ts"

interface WasmBackendLike {
  incRef(dataId: tf.DataId): void
  readSync(dataId: tf.DataId): tf.backend_util.BackendValues
  makeOutput(shape: Array<number>, dtype: tf.DataType): tf.TensorInfo
  typedArrayFromHeap(info: tf.TensorInfo): tf.backend_util.TypedArray
}

const replace = (kernelName: string, make: (original: tf.KernelConfig) => tf.KernelFunc): void => {
  const original = tf.getKernel(kernelName, "wasm")
  if (original === undefined) return
  tf.unregisterKernel(kernelName, "wasm")
  tf.registerKernel({ kernelName, backendName: "wasm", kernelFunc: make(original), setupFunc: original.setupFunc })
}

const share = (x: tf.TensorInfo, backend: WasmBackendLike): tf.TensorInfo => {
  backend.incRef(x.dataId)
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype }
}

const gather = (original: tf.KernelConfig): tf.KernelFunc => (args) => {
  const { x, indices } = args.inputs as { x: tf.TensorInfo; indices: tf.TensorInfo }
  const { axis, batchDims } = args.attrs as unknown as { axis: number; batchDims: number }
  const backend = args.backend as unknown as WasmBackendLike
  if (batchDims !== 0 || (x.dtype !== "float32" && x.dtype !== "int32") || indices.dtype !== "int32") {
    return original.kernelFunc(args)
  }
  const parsedAxis = tf.util.parseAxisParam(axis, x.shape)[0]
  const ids = backend.readSync(indices.dataId) as Int32Array
  const dim = x.shape[parsedAxis]
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] < 0 || ids[i] >= dim) throw new Error(`GatherV2: the index value ${ids[i]} is not in [0, ${dim - 1}]`)
  }
  const outer = x.shape.slice(0, parsedAxis).reduce((a, b) => a * b, 1)
  const inner = x.shape.slice(parsedAxis + 1).reduce((a, b) => a * b, 1)
  const outShape = [...x.shape.slice(0, parsedAxis), ...indices.shape, ...x.shape.slice(parsedAxis + 1)]
  const out = backend.makeOutput(outShape, x.dtype)
  // Views after the allocation: it may have grown (and replaced) the heap's buffer.
  const src = backend.typedArrayFromHeap(x)
  const dst = backend.typedArrayFromHeap(out)
  const n = ids.length
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < n; i++) {
      const from = (o * dim + ids[i]) * inner
      const to = (o * n + i) * inner
      if (inner >= 16) dst.set(src.subarray(from, from + inner), to)
      else for (let j = 0; j < inner; j++) dst[to + j] = src[from + j]
    }
  }
  return out
}

let registered = false

/**
 * The generated BatchMatMul (Gemm.ts), the fused elementwise kernels
 * (Fused.ts) and the replacements above; idempotent.
 */
export const registerFastWasmKernels = (): void => {
  registerWasmGemm()
  registerWasmFused()
  if (registered || tf.getKernel("Identity", "wasm") === undefined) return
  replace("Identity", (original) => (args) => {
    const x = (args.inputs as { x: tf.TensorInfo }).x
    return x.dtype === "string" ? original.kernelFunc(args) : share(x, args.backend as unknown as WasmBackendLike)
  })
  replace("Cast", (original) => (args) => {
    const x = (args.inputs as { x: tf.TensorInfo }).x
    const dtype = (args.attrs as unknown as { dtype: tf.DataType }).dtype
    return x.dtype === dtype && dtype !== "string"
      ? share(x, args.backend as unknown as WasmBackendLike)
      : original.kernelFunc(args)
  })
  replace("GatherV2", gather)
  registered = true
}
