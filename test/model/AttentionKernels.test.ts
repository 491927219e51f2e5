/**
 * The wasm kernels attention (and every weight product) runs on: the generated BatchMatMul
 * (src/compute/wasm/Gemm.ts) against a float64 reference for batched, transposed, broadcast and
 * edge-sized problems, and bit-identical whether compiled optimized up front or for baseline
 * first; the replaced Identity, Cast and GatherV2 (src/compute/wasm/Overrides.ts) and the fused
 * RMSNorm / SwiGLU kernels (src/compute/wasm/Fused.ts) against the cpu backend; matMul and
 * gather of the same problems on webgpu against cpu too.
 */
import { describe, expect, it } from "@effect/vitest"
import * as tf from "@tensorflow/tfjs"
import { beforeAll } from "vitest"
import { GemmKernels, type GemmProblem, OPTIMIZE_FIRST_WORK } from "../../src/compute/wasm/Gemm.ts"
import { FusedKernels, rmsNorm } from "../../src/model/Transformer.ts"
import { maxAbsDiff, onBackends, readAll, useBackend } from "../helpers/backend.ts"

interface HeapBackend {
  readonly wasm: ConstructorParameters<typeof GemmKernels>[0]
  getMemoryOffset(dataId: tf.DataId): number
}

/** C = op(A)·op(B) in float64, with batch items broadcast by index modulo the operand's count. */
const reference = (a: Float32Array, b: Float32Array, p: GemmProblem): Float64Array => {
  const { batch, m, n, k } = p
  const out = new Float64Array(batch * m * n)
  for (let q = 0; q < batch; q++) {
    const aBase = p.batchStrideA === 0 ? 0 : q * m * k
    const bBase = p.batchStrideB === 0 ? 0 : q * k * n
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let sum = 0
        for (let kk = 0; kk < k; kk++) {
          sum += a[aBase + (p.transposeA ? kk * m + i : i * k + kk)] * b[bBase + (p.transposeB ? j * k + kk : kk * n + j)]
        }
        out[(q * m + i) * n + j] = sum
      }
    }
  }
  return out
}

describe("generated BatchMatMul (wasm)", () => {
  beforeAll(() => useBackend("wasm"))

  it("matches a float64 reference: tile edges, transposes (packed A included), batches, broadcasting", () => {
    const backend = tf.backend() as unknown as HeapBackend
    const check = (kernels: GemmKernels, p: GemmProblem, seed: number): number => {
      const batchA = p.batchStrideA === 0 ? 1 : p.batch
      const batchB = p.batchStrideB === 0 ? 1 : p.batch
      const a = tf.randomNormal([batchA * p.m * p.k], 0, 1, "float32", seed)
      const b = tf.randomNormal([batchB * p.k * p.n], 0, 1, "float32", seed + 1)
      const c = tf.zeros([p.batch * p.m * p.n])
      kernels.run(p, backend.getMemoryOffset(a.dataId), backend.getMemoryOffset(b.dataId), backend.getMemoryOffset(c.dataId))
      const expected = reference(a.dataSync() as Float32Array, b.dataSync() as Float32Array, p)
      const scale = Math.max(1, ...Array.from(expected, Math.abs))
      const diff = maxAbsDiff(c.dataSync(), expected) / scale
      tf.dispose([a, b, c])
      return diff
    }
    const problems: Array<GemmProblem> = []
    for (const m of [1, 6, 7, 13]) {
      for (const n of [3, 5, 8, 9, 17]) {
        for (const k of [1, 5, 9, 130]) {
          for (const transposeA of [false, true]) {
            for (const transposeB of [false, true]) {
              problems.push({ batch: 2, m, n, k, transposeA, transposeB, batchStrideA: m * k, batchStrideB: k * n })
            }
          }
        }
      }
    }
    for (const transposeA of [false, true]) {
      for (const transposeB of [false, true]) {
        problems.push({ batch: 3, m: 7, n: 9, k: 5, transposeA, transposeB, batchStrideA: 0, batchStrideB: 45 })
        problems.push({ batch: 3, m: 7, n: 9, k: 5, transposeA, transposeB, batchStrideA: 35, batchStrideB: 0 })
      }
    }
    const fused = new GemmKernels(backend.wasm, true)
    const separate = new GemmKernels(backend.wasm, false) // multiply then add: engines without relaxed SIMD
    let worst = 0
    problems.forEach((p, i) => {
      worst = Math.max(worst, check(fused, p, 2 * i))
      if (p.batchStrideA !== 0 && p.batchStrideB !== 0) worst = Math.max(worst, check(separate, p, 2 * i))
    })
    expect(fused.compiled).toBe(problems.length)
    // Relative to the largest entry (or absolute below 1): float32 round-off only.
    expect(worst).toBeLessThan(1e-5)
  })

  it("a product compiled optimized up front gives the same bits as one compiled for baseline first", () => {
    const backend = tf.backend() as unknown as HeapBackend
    // At least OPTIMIZE_FIRST_WORK (2^24 multiply-adds), in every transpose combination.
    const problems: Array<GemmProblem> = [false, true].flatMap((transposeA) =>
      [false, true].map((transposeB) => ({ batch: 1, m: 300, n: 260, k: 220, transposeA, transposeB, batchStrideA: 0, batchStrideB: 0 })))
    expect(problems[0].m * problems[0].n * problems[0].k).toBeGreaterThanOrEqual(OPTIMIZE_FIRST_WORK)
    const optimized = new GemmKernels(backend.wasm)
    const baseline = new GemmKernels(backend.wasm, optimized.fma, Infinity)
    const product = (kernels: GemmKernels, p: GemmProblem, a: tf.Tensor, b: tf.Tensor): Float32Array => {
      const c = tf.zeros([p.m * p.n])
      kernels.run(p, backend.getMemoryOffset(a.dataId), backend.getMemoryOffset(b.dataId), backend.getMemoryOffset(c.dataId))
      const out = c.dataSync() as Float32Array
      c.dispose()
      return out
    }
    problems.forEach((p, i) => {
      const a = tf.randomNormal([p.m * p.k], 0, 1, "float32", 40 + i)
      const b = tf.randomNormal([p.k * p.n], 0, 1, "float32", 50 + i)
      const first = product(baseline, p, a, b)
      const eager = product(optimized, p, a, b)
      expect(Buffer.from(eager.buffer).equals(Buffer.from(first.buffer))).toBe(true)
      // And against float64, so that both are right, not merely equal.
      const expected = reference(a.dataSync() as Float32Array, b.dataSync() as Float32Array, p)
      expect(maxAbsDiff(eager, expected) / Math.max(1, ...Array.from(expected, Math.abs))).toBeLessThan(1e-5)
      tf.dispose([a, b])
    })
  })

  it("runs tf.matMul: model shapes, broadcast batch dims, and the fallback for tiny products", async () => {
    const shapes: Array<[Array<number>, Array<number>, boolean, boolean]> = [
      [[96, 64], [64, 40], false, false], // 2-D weight product
      [[96, 64], [40, 64], false, true], // its input gradient
      [[96, 64], [96, 40], true, false], // its weight gradient
      [[6, 48, 16], [6, 24, 16], false, true], // attention scores
      [[6, 48, 24], [6, 24, 16], false, false], // attention context
      [[2, 3, 40, 16], [1, 1, 16, 30], false, false], // broadcast B
      [[1, 40, 16], [2, 3, 16, 30], false, false], // broadcast A
      [[3, 4, 5], [3, 5, 2], false, false] // below the threshold: tfjs-wasm's own kernel
    ]
    const run = async () => {
      const products = shapes.map(([sa, sb, ta, tb], i) =>
        tf.tidy(() => tf.matMul(tf.randomNormal(sa, 0, 1, "float32", 10 + i), tf.randomNormal(sb, 0, 1, "float32", 20 + i), ta, tb)))
      const shapesOut = products.map((c) => c.shape)
      return (await readAll(products, true)).map((values, i) => ({ shape: shapesOut[i], values }))
    }
    // webgpu too: the same products through its own kernels.
    const [cpu, ...others] = await onBackends(["cpu", "wasm", "webgpu"], run)
    for (const other of others) {
      other.forEach((w, i) => {
        expect(w.shape).toEqual(cpu[i].shape)
        expect(maxAbsDiff(w.values, cpu[i].values)).toBeLessThan(1e-4)
      })
    }
  })
})

describe("replaced Identity, Cast and GatherV2 (wasm)", () => {
  it("clone and same-dtype cast share data yet outlive their source; other casts convert", async () => {
    await useBackend("wasm")
    const x = tf.tensor1d([1.5, -2, 3])
    const clone = tf.clone(x)
    const same = tf.cast(x, "float32")
    const ints = tf.cast(x, "int32")
    x.dispose()
    expect(Array.from(clone.dataSync())).toEqual([1.5, -2, 3])
    expect(Array.from(same.dataSync())).toEqual([1.5, -2, 3])
    expect(Array.from(ints.dataSync())).toEqual([1, -2, 3])
    expect(ints.dtype).toBe("int32")
    const before = tf.memory().numTensors
    tf.dispose([clone, same, ints])
    expect(tf.memory().numTensors).toBe(before - 3)
  })

  it("gathers like the cpu backend on every axis, float32 and int32 (and so does webgpu)", async () => {
    const run = async () => {
      const gathered = tf.tidy(() => {
        const x = tf.randomNormal([4, 5, 6], 0, 1, "float32", 3)
        const xi = tf.cast(tf.mul(x, 10), "int32")
        const idx = tf.tensor1d([3, 0, 0, 2], "int32")
        const idx2 = tf.tensor2d([[1, 4], [2, 0]], undefined, "int32")
        return [
          tf.gather(x, idx, 0), tf.gather(x, idx, 1), tf.gather(x, idx2, 2), tf.gather(xi, idx2, 1),
          tf.gather(tf.randomNormal([32, 128], 0, 1, "float32", 4), tf.tensor1d([31, 0, 7, 7], "int32"))
        ]
      })
      const described = gathered.map((t) => ({ shape: t.shape, dtype: t.dtype }))
      return (await readAll(gathered, true)).map((values, i) => ({ ...described[i], values: Array.from(values) }))
    }
    const [cpu, wasm, webgpu] = await onBackends(["cpu", "wasm", "webgpu"], run)
    expect(wasm).toEqual(cpu)
    expect(webgpu).toEqual(cpu)
    await useBackend("wasm")
    expect(() => tf.gather(tf.ones([3, 2]), tf.tensor1d([3], "int32"))).toThrow(/not in \[0, 2\]/)
  })
})

describe("fused RMSNorm and SwiGLU kernels (wasm) equal the tfjs ops (cpu)", () => {
  it("RMSNorm forward and gradients, row sizes with and without a tail of 4", async () => {
    for (const d of [13, 64]) {
      const run = () =>
        tf.tidy(() => {
          const x = tf.randomNormal([5, d], 0, 1, "float32", d)
          const w = tf.randomNormal([d], 1, 0.3, "float32", d + 1)
          const dy = tf.randomNormal([5, d], 0, 1, "float32", d + 2)
          const y = rmsNorm(x as tf.Tensor2D, w as tf.Tensor1D, 1e-5)
          const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(rmsNorm(a as tf.Tensor2D, b as tf.Tensor1D, 1e-5), dy)))([x, w])
          return [y, dx, dw].map((t) => t.dataSync())
        })
      const [cpu, wasm] = await onBackends(["cpu", "wasm"], run)
      expect(tf.getKernel(FusedKernels.rmsNorm, "wasm")).toBeDefined()
      wasm.forEach((values, i) => expect(maxAbsDiff(values, cpu[i]), `d ${d}, output ${i}`).toBeLessThan(1e-5))
    }
  })

  it("SwiGLU gradient kernel against its formula, sizes with and without a tail of 4", async () => {
    await useBackend("wasm")
    for (const size of [37, 64]) {
      const [dy, gate, up] = [1, 2, 3].map((seed) => tf.randomNormal([size], 0, 1, "float32", seed + size))
      const s = tf.sigmoid(gate)
      const a = tf.mul(gate, s)
      const [dg, du] = tf.engine().runKernel(FusedKernels.swiGluGrad, { dy, s, a, up }) as Array<tf.Tensor>
      const expectedDg = tf.mul(tf.mul(dy, up), tf.sub(tf.add(s, a), tf.mul(a, s)))
      const expectedDu = tf.mul(dy, a)
      expect(maxAbsDiff(dg.dataSync(), expectedDg.dataSync())).toBeLessThan(1e-6)
      expect(maxAbsDiff(du.dataSync(), expectedDu.dataSync())).toBeLessThan(1e-6)
      tf.dispose([dy, gate, up, s, a, dg, du, expectedDg, expectedDu])
    }
  })
})
