/**
 * ONNX Runtime's ceiling on this machine right now: one float32 MatMul [M, K]·[K, N] alone in a
 * graph, at the given intra-op threads, in GFLOP/s (2·M·K·N per product, median of `repeats`
 * after one warm-up). The prefill benchmark times it at each shape's largest product (the MLP's
 * gate or up projection over every token), so a forward's GFLOP/s can be read against what the
 * same engine reaches on its best-shaped kernel, in the same run.
 */
import * as ort from "onnxruntime-node"
import { GraphBuilder } from "../src/onnx/GraphBuilder.ts"
import { encodeInline } from "../src/onnx/OnnxFile.ts"
import { openDecoderSession } from "../src/onnx/OrtDecoder.ts"
import { randomTensorValues } from "../src/io/RandomCheckpoint.ts"
import { median } from "./common.ts"

const randomValues = (size: number, seed: number): Float32Array => randomTensorValues("w", size, 0.02, seed)

export const ortMatMulGflops = async (m: number, k: number, n: number, threads: number, repeats = 10): Promise<number> => {
  const g = new GraphBuilder()
  const x = g.input("x", "float32", [m, k])
  g.node("MatMul", [x, g.weight("w", [k, n])], {}, "y")
  g.output("y", "float32", [m, n])
  const w = randomValues(k * n, 1)
  const session = await openDecoderSession(encodeInline(g, () => w), { threads })
  try {
    const feeds = { x: new ort.Tensor("float32", randomValues(m * k, 2), [m, k]) }
    const times: Array<number> = []
    for (let i = 0; i <= repeats; i++) {
      const started = performance.now()
      await session.run(feeds)
      if (i > 0) times.push(performance.now() - started)
    }
    return (2 * m * k * n) / 1e9 / (median(times) / 1000)
  } finally {
    await session.release()
  }
}
