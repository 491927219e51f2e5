/**
 * `npm run -s bench -- adapter-step-profile --dir DIR`: where the time of one adapter tuning
 * step (bench/adapterStep.ts, the `scale` stage) goes. Three steps from the same start: the
 * first two plain (the first in a fresh process, as `scale` runs it, the second warm), timed by
 * phase (forward blocks, the chunked LM head, backward blocks with their
 * recompute, AdamW) with the weight reads (file read, BF16 → f32 decode, transpose, upload)
 * timed apart through a wrapped weight source, garbage collection from the `gc` performance
 * entries and process CPU time per phase (CPU / wall = cores busy); the second inside
 * tf.profile, for kernel time per phase, by kernel and by matMul operand shapes, with the
 * products' GFLOP/s beside calibrate()'s wasm matMul figure. The profiled step pays the
 * profiler's own bookkeeping, so its walls run a little longer than the plain step's. A fourth
 * step, warm, keeps the batch whole (its padding computed, as before LengthBuckets.ts).
 * With --peer, the PyTorch peer's whole fine-tuning step at the same batch and rows.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import { PerformanceObserver } from "node:perf_hooks"
import { openLazyCheckpoint } from "../src/io/CheckpointReader.ts"
import { layerTensors } from "../src/model/Params.ts"
import type { WeightSource } from "../src/model/WeightSource.ts"
import { adapterSteps, type StepProbe } from "./adapterStep.ts"
import { type Benchmark, calibrate, describeConfig, intOption, machineInfo, type Options, progress, round, run } from "./common.ts"
import { runPeer } from "./peer.ts"

const phases = ["forward", "head", "backward", "adamw", "rest"] as const
type Phase = (typeof phases)[number]

interface Read {
  readonly what: "block" | "head" | "embed" | "norm"
  readonly start: number
  readonly ms: number
  readonly floats: number
}

/** What one step leaves: phase boundaries (time, CPU, kernel count), reads, GC pauses. */
interface Trace {
  readonly marks: Map<string, { at: number; cpuMs: number; kernels: number }>
  readonly reads: Array<Read>
  blocksDone: number
}

const kernelCount = () => tf.engine().state.activeProfile.kernels.length
const cpuMs = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

/** A source whose every request is timed (read, decode, transpose and upload together). */
const timedSource = (trace: Trace) => <E>(source: WeightSource<E>): WeightSource<E> => {
  const timed = <A>(what: Read["what"], effect: Effect.Effect<A, E>, floats: (a: A) => number) =>
    Effect.suspend(() => {
      const start = performance.now()
      return Effect.tap(effect, (a) => Effect.sync(() => trace.reads.push({ what, start, ms: performance.now() - start, floats: floats(a) })))
    })
  return {
    ...source,
    embed: (ids) => timed("embed", source.embed(ids), (t) => t.size),
    layer: (i) => {
      // The backward pass starts with its first block read after the head.
      if (trace.blocksDone === source.config.layers.length && !trace.marks.has("backward")) mark(trace, "backward")
      return timed("block", source.layer(i), (p) => layerTensors(p).reduce((n, t) => n + t.size, 0))
    },
    norm: timed("norm", source.norm, (t) => t.size),
    headRows: (first, count) => timed("head", source.headRows(first, count), (t) => t.size),
    headGather: (ids) => timed("head", source.headGather(ids), (t) => t.size)
  }
}

const mark = (trace: Trace, name: string) => trace.marks.set(name, { at: performance.now(), cpuMs: cpuMs(), kernels: kernelCount() })

const probeOf = (trace: Trace, layers: number, around?: StepProbe["around"]): StepProbe => ({
  source: timedSource(trace),
  onBlock: (done) => {
    trace.blocksDone = done
    if (done === layers) mark(trace, "head")
    if (done === 2 * layers) mark(trace, "gradientsDone")
  },
  mark: (event) => mark(trace, event === "start" ? "forward" : event === "gradients" ? "adamw" : "end"),
  ...(around !== undefined ? { around } : {})
})

/** [start, end) of each phase from a trace's marks; "rest" is between the last block and the gradients' return. */
const spans: Record<Phase, { from: string; to: string }> = {
  forward: { from: "forward", to: "head" },
  head: { from: "head", to: "backward" },
  backward: { from: "backward", to: "gradientsDone" },
  rest: { from: "gradientsDone", to: "adamw" },
  adamw: { from: "adamw", to: "end" }
}

const matMulKey = (k: KernelRecord) =>
  `${k.inputShapes.map((s) => `[${s.join(",")}]`).join("·")} → [${k.outputShapes[0].join(",")}]`

/** Multiply-adds × 2 of a BatchMatMul from its first operand and output: K = |A's matrix| / M. */
export const matMulFlops = (a: ReadonlyArray<number>, out: ReadonlyArray<number>): number => {
  const m = out[out.length - 2]
  const n = out[out.length - 1]
  const batch = out.slice(0, -2).reduce((x, y) => x * y, 1)
  const k = (a[a.length - 2] * a[a.length - 1]) / m
  return 2 * batch * m * n * k
}

interface KernelRecord {
  readonly name: string
  readonly inputShapes: Array<Array<number>>
  readonly outputShapes: Array<Array<number>>
  readonly kernelTimeMs: number
}

export const adapterStepProfile: Benchmark = {
  summary: "where one adapter tuning step's time goes: weight reads, forward, chunked head, backward, AdamW; kernels and matMul shapes",
  usage: "adapter-step-profile --dir DIR [--batch 8] [--rank 16] [--top 15] [--peer]",
  options: ["dir", "batch", "rank", "top", "peer"],
  run: async (options: Options) => {
    const dir = options.get("dir")
    if (dir === undefined) throw new Error("adapter-step-profile: --dir DIR is required (a checkpoint, e.g. from make-checkpoint)")
    const batchSize = intOption(options, "batch", 8)
    const rank = intOption(options, "rank", 16)
    const top = intOption(options, "top", 15)
    const machine = machineInfo()
    progress("adapter-step-profile: calibrating the wasm matMul")
    const calibration = await calibrate()

    const gcPauses: Array<{ start: number; ms: number }> = []
    const observer = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) gcPauses.push({ start: e.startTime, ms: e.duration })
    })
    observer.observe({ entryTypes: ["gc"] })

    const cold: Trace = { marks: new Map(), reads: [], blocksDone: 0 }
    const plain: Trace = { marks: new Map(), reads: [], blocksDone: 0 }
    const profiled: Trace = { marks: new Map(), reads: [], blocksDone: 0 }
    let kernels: Array<KernelRecord> = []
    const layerCount = await run(Effect.scoped(Effect.map(openLazyCheckpoint(dir), (c) => c.config.layers.length)).pipe(Effect.orDie))
    progress("adapter-step-profile: two plain steps, one inside tf.profile, then one with the batch kept whole")
    const whole: Trace = { marks: new Map(), reads: [], blocksDone: 0 }
    const { config: modelConfig, steps } = await adapterSteps(dir, batchSize, rank, [
      probeOf(cold, layerCount),
      probeOf(plain, layerCount),
      probeOf(profiled, layerCount, async (step) => {
        const info = await tf.profile(step)
        kernels = info.kernels as unknown as Array<KernelRecord>
      }),
      // The same warm step with the batch's padding computed, as before length buckets.
      { ...probeOf(whole, layerCount), microBatchOverheadFlops: Infinity }
    ])
    await new Promise((resolve) => setTimeout(resolve, 50))
    observer.disconnect()

    // Kernel records of a customGrad scope enclose kernels recorded themselves: registered kernels only.
    const backend = tf.getBackend()
    const isKernel = (name: string) => tf.getKernel(name, backend) !== undefined
    const phaseRows = (trace: Trace, withKernels: boolean) =>
      phases.map((phase) => {
        const { from, to } = spans[phase]
        const a = trace.marks.get(from)!
        const b = trace.marks.get(to)!
        const wall = b.at - a.at
        const inside = (t: number) => t >= a.at && t < b.at
        const reads = trace.reads.filter((r) => inside(r.start))
        const readMs = reads.reduce((s, r) => s + r.ms, 0)
        const gcMs = gcPauses.filter((g) => inside(g.start)).reduce((s, g) => s + g.ms, 0)
        const own = withKernels ? kernels.slice(a.kernels, b.kernels).filter((k) => isKernel(k.name)) : []
        const kernelMs = own.reduce((s, k) => s + k.kernelTimeMs, 0)
        const matMuls = own.filter((k) => k.name === "BatchMatMul")
        const flops = matMuls.reduce((s, k) => s + matMulFlops(k.inputShapes[0], k.outputShapes[0]), 0)
        const matMulMs = matMuls.reduce((s, k) => s + k.kernelTimeMs, 0)
        return {
          phase,
          wallS: round(wall / 1000, 2),
          readS: round(readMs / 1000, 2),
          readFloatsM: round(reads.reduce((s, r) => s + r.floats, 0) / 1e6, 1),
          gcS: round(gcMs / 1000, 2),
          coresBusy: round((b.cpuMs - a.cpuMs) / Math.max(wall, 1e-9), 2),
          ...(withKernels
            ? {
              kernelS: round(kernelMs / 1000, 2),
              matMulS: round(matMulMs / 1000, 2),
              matMulGflop: round(flops / 1e9, 1),
              matMulGflops: matMulMs > 0 ? round(flops / 1e6 / matMulMs, 1) : 0,
              // Wall not spent reading weights nor inside kernels: op dispatch, tape, tidy, copies, GC.
              otherS: round((wall - readMs - kernelMs) / 1000, 2)
            }
            : {})
        }
      })
    const coldRows = phaseRows(cold, false)
    const plainRows = phaseRows(plain, false)
    const profiledRows = phaseRows(profiled, true)
    const stepWall = (trace: Trace) => (trace.marks.get("end")!.at - trace.marks.get("forward")!.at) / 1000

    const counted = kernels.filter((k) => isKernel(k.name))
    const sumBy = (key: (k: KernelRecord) => string, list: ReadonlyArray<KernelRecord>) => {
      const rows = new Map<string, { ms: number; calls: number; flops: number }>()
      for (const k of list) {
        const row = rows.get(key(k)) ?? { ms: 0, calls: 0, flops: 0 }
        row.ms += k.kernelTimeMs
        row.calls++
        if (k.name === "BatchMatMul") row.flops += matMulFlops(k.inputShapes[0], k.outputShapes[0])
        rows.set(key(k), row)
      }
      return [...rows.entries()].sort((x, y) => y[1].ms - x[1].ms)
    }
    const kernelTotal = counted.reduce((s, k) => s + k.kernelTimeMs, 0)
    const byKernel = sumBy((k) => k.name, counted).slice(0, top).map(([kernel, r]) => ({
      kernel,
      s: round(r.ms / 1000, 2),
      calls: r.calls,
      share: round(r.ms / kernelTotal, 3)
    }))
    const matMuls = counted.filter((k) => k.name === "BatchMatMul")
    const byMatMul = sumBy(matMulKey, matMuls).slice(0, top).map(([shapes, r]) => ({
      shapes,
      s: round(r.ms / 1000, 2),
      calls: r.calls,
      gflop: round(r.flops / 1e9, 1),
      gflops: round(r.flops / 1e6 / r.ms, 1)
    }))
    const totalFlops = matMuls.reduce((s, k) => s + matMulFlops(k.inputShapes[0], k.outputShapes[0]), 0)
    const matMulMs = matMuls.reduce((s, k) => s + k.kernelTimeMs, 0)

    const peer = options.has("peer")
      ? await (async () => {
        progress("adapter-step-profile: the PyTorch peer's fine-tuning step")
        return runPeer({ config: modelConfig, mode: "train", threads: 2, batch: steps[0].rows.batch, seq: steps[0].rows.seq, steps: 1, warmup: 1 })
      })()
      : undefined

    return {
      benchmark: "adapter-step-profile",
      machine,
      calibration,
      model: describeConfig(modelConfig),
      batch: steps[0].rows,
      rowsComputed: steps[0].rowsComputed,
      microBatches: steps[0].microBatches,
      answerTokens: steps[0].tokens,
      loss: steps.map((s) => round(s.loss, 4)),
      gradientDigests: steps.map((s) => s.gradientDigest),
      note: "Walls from a shared machine are inflated by other load; the shares say where time goes. " +
        "readS: weight requests (file read, BF16 → f32 decode, transpose, upload); otherS: wall outside reads and kernels.",
      coldStep: { seconds: round(stepWall(cold), 2), phases: coldRows },
      warmStep: { seconds: round(stepWall(plain), 2), phases: plainRows },
      profiledStep: { seconds: round(stepWall(profiled), 2), kernelS: round(kernelTotal / 1000, 2), phases: profiledRows },
      wholeBatchStep: { seconds: round(stepWall(whole), 2), rowsComputed: steps[3].rowsComputed, phases: phaseRows(whole, false) },
      matMul: {
        gflop: round(totalFlops / 1e9, 1),
        seconds: round(matMulMs / 1000, 2),
        gflops: round(totalFlops / 1e6 / matMulMs, 1),
        calibratedGflopsOneThread: calibration.wasmMatMulGflops.oneThread
      },
      byKernel,
      byMatMul,
      ...(peer !== undefined ? { peer } : {})
    }
  }
}
