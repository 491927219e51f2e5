/**
 * Where a training step's time goes: tf.profile of loss + gradients of the reference batch (in
 * this thread), summed by kernel, with matrix products split by operand shapes. Kernel times
 * on wasm are wall-clock around each kernel, so they include the kernel's own JavaScript.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { lossAndGradients } from "../src/model/Gradients.ts"
import { disposeParams, initParams } from "../src/model/Params.ts"
import { Rng } from "../src/model/Rng.ts"
import { type Benchmark, intOption, machineInfo, type Options, progress, referenceConfig, round, useBackend } from "./common.ts"

export const profile: Benchmark = {
  summary: "kernel-by-kernel profile of one training step (loss + gradients), matMuls by shape",
  usage: "profile [--backend wasm] [--batch 16] [--seq 64] [--top 40]",
  options: ["backend", "batch", "seq", "top"],
  run: async (options: Options) => {
    const backend = options.get("backend") ?? "wasm"
    const batchSize = intOption(options, "batch", 16)
    const seqLen = intOption(options, "seq", 64)
    const top = intOption(options, "top", 40)
    const description = await useBackend(backend)
    const config = referenceConfig
    const params = initParams(config, 1)
    const rng = Rng.seeded(3)
    const ids = Int32Array.from({ length: batchSize * (seqLen + 1) }, () => rng.int(config.vocabSize))
    const step = async () => tf.dispose((await Effect.runPromise(lossAndGradients(config, params, { ids, batchSize, seqLen: seqLen + 1 }))).grads)
    for (let i = 0; i < 3; i++) await step() // warm-up: kernel compilation, allocator
    progress(`profile: ${backend}, one step`)
    const started = performance.now()
    const info = await tf.profile(step)
    const wall = performance.now() - started
    const rows = new Map<string, { ms: number; calls: number }>()
    let total = 0
    for (const k of info.kernels) {
      const key = k.name === "BatchMatMul" ? `BatchMatMul ${JSON.stringify(k.inputShapes)}` : k.name
      const row = rows.get(key) ?? { ms: 0, calls: 0 }
      row.ms += k.kernelTimeMs as number
      row.calls++
      rows.set(key, row)
      total += k.kernelTimeMs as number
    }
    disposeParams(config, params)
    return {
      benchmark: "profile",
      machine: machineInfo(),
      backend: description,
      batch: batchSize,
      seqLen,
      wallMs: round(wall),
      kernelMs: round(total),
      kernels: info.kernels.length,
      byKernel: [...rows.entries()]
        .sort((a, b) => b[1].ms - a[1].ms)
        .slice(0, top)
        .map(([kernel, row]) => ({ kernel, ms: round(row.ms, 2), calls: row.calls, share: round(row.ms / total, 3) }))
    }
  }
}
