/**
 * Matrix-product kernels on wasm: the generated BatchMatMul (src/compute/wasm/Gemm.ts) against
 * tfjs-wasm's own kernel on the shapes of the reference model's training step, side by side
 * in one process (alternating, medians), in GFLOP/s.
 */
import * as tf from "@tensorflow/tfjs"
import { type Benchmark, intOption, machineInfo, median, type Options, progress, round, useBackend } from "./common.ts"

interface Case {
  readonly name: string
  readonly a: Array<number>
  readonly b: Array<number>
  readonly transposeA: boolean
  readonly transposeB: boolean
}

/** Products of one training step of the reference model (B·T = 1024 tokens, D 128, MLP 512, 4 heads of 32). */
const cases: ReadonlyArray<Case> = [
  { name: "forward x·W (gate/up)", a: [1024, 128], b: [128, 512], transposeA: false, transposeB: false },
  { name: "forward x·W (down)", a: [1024, 512], b: [512, 128], transposeA: false, transposeB: false },
  { name: "forward x·W (q/k/v/o)", a: [1024, 128], b: [128, 128], transposeA: false, transposeB: false },
  { name: "backward dY·Wᵀ (gate/up)", a: [1024, 512], b: [128, 512], transposeA: false, transposeB: true },
  { name: "backward dY·Wᵀ (down)", a: [1024, 128], b: [512, 128], transposeA: false, transposeB: true },
  { name: "backward dY·Wᵀ (q/k/v/o)", a: [1024, 128], b: [128, 128], transposeA: false, transposeB: true },
  { name: "backward Xᵀ·dY (gate/up)", a: [1024, 128], b: [1024, 512], transposeA: true, transposeB: false },
  { name: "backward Xᵀ·dY (down)", a: [1024, 512], b: [1024, 128], transposeA: true, transposeB: false },
  { name: "backward Xᵀ·dY (q/k/v/o)", a: [1024, 128], b: [1024, 128], transposeA: true, transposeB: false },
  { name: "attention Q·Kᵀ", a: [64, 64, 32], b: [64, 64, 32], transposeA: false, transposeB: true },
  { name: "attention P·V", a: [64, 64, 64], b: [64, 64, 32], transposeA: false, transposeB: false },
  { name: "attention Pᵀ·dC", a: [64, 64, 64], b: [64, 64, 32], transposeA: true, transposeB: false }
]

export const kernels: Benchmark = {
  summary: "wasm matMul kernels: generated (relaxed-SIMD FMA) vs tfjs-wasm's own, GFLOP/s",
  usage: "kernels [--repeats 11]",
  options: ["repeats"],
  run: async (options: Options) => {
    const repeats = intOption(options, "repeats", 11)
    const description = await useBackend("wasm")
    const generated = tf.getKernel("BatchMatMul", "wasm")!
    const original = (await import("../src/compute/wasm/Gemm.ts")).originalBatchMatMul()
    const use = (kernel: tf.KernelConfig) => {
      tf.unregisterKernel("BatchMatMul", "wasm")
      tf.registerKernel(kernel)
    }
    const results = []
    try {
      for (const c of cases) {
        const a = tf.randomNormal(c.a)
        const b = tf.randomNormal(c.b)
        const out = tf.matMul(a, b, c.transposeA, c.transposeB)
        const inner = c.transposeA ? c.a[c.a.length - 2] : c.a[c.a.length - 1]
        const gflop = (2 * out.size * inner) / 1e9
        out.dispose()
        const times: Record<"generated" | "original", Array<number>> = { generated: [], original: [] }
        for (let r = 0; r < repeats; r++) {
          for (const which of ["generated", "original"] as const) {
            use(which === "generated" ? generated : original)
            if (r === 0) tf.matMul(a, b, c.transposeA, c.transposeB).dispose()
            const started = performance.now()
            tf.matMul(a, b, c.transposeA, c.transposeB).dispose()
            times[which].push(performance.now() - started)
          }
        }
        use(generated)
        tf.dispose([a, b])
        const entry = {
          product: c.name,
          a: c.a,
          b: c.b,
          transposeA: c.transposeA,
          transposeB: c.transposeB,
          generated: { ms: round(median(times.generated), 3), gflops: round(gflop / (median(times.generated) / 1000)) },
          original: { ms: round(median(times.original), 3), gflops: round(gflop / (median(times.original) / 1000)) }
        }
        progress(`  ${c.name}: generated ${entry.generated.gflops} GFLOP/s, tfjs-wasm ${entry.original.gflops} GFLOP/s`)
        results.push(entry)
      }
    } finally {
      use(generated)
    }
    return { benchmark: "kernels", machine: machineInfo(), backend: description, repeats, results }
  }
}
