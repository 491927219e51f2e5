/**
 * `npm run -s bench -- prefill`: the whole-sequence forward (prefill, as an evaluation or
 * calibration pass runs it: `--batch` sequences of `--seq` tokens, no KV cache before, logits of
 * every position) of randomly initialised models at real shapes (smollm2-135m, qwen2.5-0.5b, the
 * presets of src/io/ShapePresets.ts and the ladder of checkpoints.ts), and of the small
 * `reference` model for a quick run, on each engine:
 *   ort   ONNX Runtime's CPU execution provider at `--threads` intra-op threads, on the decoder
 *         graph simmer exports (src/onnx/GraphSession.ts: weights drawn straight into the graph,
 *         through a temporary external-data folder beyond the protobuf limit), one
 *         `runDecoder` call per forward, as the ort teacher and evaluation call it;
 *   tfjs  simmer's transformer (`forward`) on the wasm backend, one thread. Off by default for
 *         every shape but `reference` (a 0.5B model's weights and logits crowd the wasm heap and a
 *         forward takes minutes); `--engines ort,tfjs` asks for it everywhere.
 * Beside each row the PyTorch peer (bench/peer.ts) runs the same shape, batch, sequence and
 * thread count in the same run: its `infer_forward` is a no-grad forward of the whole sequence.
 * Its `--mode infer` also decodes; that part is shrunk to one prompt of one token and one new
 * token, so it costs a few single-token forwards.
 * Beside the figures, the machine's ceilings measured in the same run: the wasm matMul of
 * `calibrate` (common.ts; `--no-calibrate` skips it) and, per ort row, ONNX Runtime's own
 * MatMul at the shape's largest product (ortMatMul.ts).
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Exit, Scope } from "effect"
import { readFileSync, writeFileSync } from "node:fs"
import { cpus } from "node:os"
import { toModelConfig } from "../src/io/HfConfig.ts"
import { randomTensorValues } from "../src/io/RandomCheckpoint.ts"
import type { ModelConfig } from "../src/model/ModelConfig.ts"
import { disposeParams, initParams, paramSpecs } from "../src/model/Params.ts"
import { Rng } from "../src/model/Rng.ts"
import { forward } from "../src/model/Transformer.ts"
import { openGraphSession } from "../src/onnx/GraphSession.ts"
import { runDecoder } from "../src/onnx/OrtDecoder.ts"
import { ladderShapes } from "./checkpoints.ts"
import {
  type Benchmark,
  calibrate,
  describeConfig,
  intOption,
  listOption,
  machineInfo,
  median,
  type Options,
  progress,
  referenceConfig,
  round,
  useBackend
} from "./common.ts"
import { forwardFlops } from "./forwardFlops.ts"
import { ortMatMulGflops } from "./ortMatMul.ts"
import { besidePeer, peerEnabled, peerOptionNames, type PeerResult, peerRunsByThreads, peersAtThreads } from "./peer.ts"

interface Shape {
  readonly config: ModelConfig
  /** Standard deviation of the random weights (the config's initializer_range). */
  readonly std: number
}

const shapeOf = (name: string): Shape => {
  if (name === "reference") return { config: referenceConfig, std: 0.02 }
  const hf = ladderShapes[name]
  if (hf === undefined) throw new Error(`--shapes: unknown shape "${name}" (known: reference, ${Object.keys(ladderShapes).join(", ")})`)
  return { config: toModelConfig(hf), std: typeof hf.initializer_range === "number" ? hf.initializer_range : 0.02 }
}

const engineNames = ["ort", "tfjs"] as const
type Engine = (typeof engineNames)[number]

/** The same token ids for every engine (the peer draws its own: ids do not change the work). */
const tokenIds = (config: ModelConfig, batch: number, seq: number): Array<Array<number>> => {
  const rng = Rng.seeded(7)
  return Array.from({ length: batch }, () => Array.from({ length: seq }, () => rng.int(config.vocabSize)))
}

const gib = (bytes: number): number => round(bytes / 2 ** 30, 2)

/**
 * The process's peak resident memory (VmHWM) since the last `resetPeakRss`, in bytes; Linux
 * only (undefined elsewhere). Writing 5 to clear_refs resets the high-water mark, so each shape
 * reports its own peak rather than the largest so far.
 */
const peakRss = (): number | undefined => {
  try {
    const kib = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))?.[1]
    return kib === undefined ? undefined : Number(kib) * 1024
  } catch {
    return undefined
  }
}
const resetPeakRss = (): boolean => {
  try {
    writeFileSync("/proc/self/clear_refs", "5")
    return true
  } catch {
    return false
  }
}

interface Timing {
  readonly runs: number
  readonly warmup: number
}

/** Times `once` `warmup + runs` times; the milliseconds of the timed ones (after the warm-up). */
const timeRuns = async (label: string, timing: Timing, once: () => Promise<void>): Promise<Array<number>> => {
  const times: Array<number> = []
  for (let i = 0; i < timing.warmup + timing.runs; i++) {
    const started = performance.now()
    await once()
    const elapsed = performance.now() - started
    if (i >= timing.warmup) times.push(elapsed)
    progress(`  ${label} forward ${i + 1}/${timing.warmup + timing.runs}: ${elapsed.toFixed(0)} ms${i < timing.warmup ? " (warm-up)" : ""}`)
  }
  return times
}

/** ONNX Runtime on the shape's decoder graph, its weights drawn per tensor as RandomCheckpoint.ts draws them. */
const ortForward = async (shape: Shape, ids: Array<Array<number>>, threads: number, timing: Timing) => {
  const { config, std } = shape
  const specs = paramSpecs(config)
  const index = new Map(specs.map((spec, i) => [spec.name, i]))
  const sizes = new Map(specs.map((spec) => [spec.name, spec.shape.reduce((a, b) => a * b, 1)]))
  const read = (name: string) =>
    Effect.sync(() => {
      const size = sizes.get(name)
      if (size === undefined) throw new Error(`prefill: the decoder graph reads "${name}", which is no parameter of the model`)
      return randomTensorValues(name, size, std, index.get(name)!)
    })
  const scope = Effect.runSync(Scope.make())
  const opening = performance.now()
  try {
    const session = await Effect.runPromise(Scope.provide(scope)(openGraphSession(config, read, {}, threads)))
    const sessionSeconds = (performance.now() - opening) / 1000
    const rssAfterOpen = process.memoryUsage.rss()
    progress(`  ort session: ${round(sessionSeconds, 1)} s, RSS ${gib(rssAfterOpen)} GiB`)
    const times = await timeRuns("ort", timing, async () => {
      await runDecoder(session, config, { ids })
    })
    return { times, sessionSeconds, rssAfterOpen }
  } finally {
    await Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

/** simmer's tfjs forward on the wasm backend (one thread), logits read back as a caller would. */
const tfjsForward = async (shape: Shape, ids: Array<Array<number>>, timing: Timing) => {
  const { config, std } = shape
  await useBackend("wasm")
  const opening = performance.now()
  const params = initParams(config, 0, std)
  const sessionSeconds = (performance.now() - opening) / 1000
  const input = tf.tensor2d(ids.flat(), [ids.length, ids[0].length], "int32")
  try {
    const times = await timeRuns("tfjs", timing, async () => {
      const logits = tf.tidy(() => forward(config, params, input).logits)
      await logits.data()
      logits.dispose()
    })
    return { times, sessionSeconds, rssAfterOpen: process.memoryUsage.rss() }
  } finally {
    input.dispose()
    disposeParams(config, params)
  }
}

export const prefill: Benchmark = {
  summary: "whole-sequence forward (prefill) at real shapes (smollm2-135m, qwen2.5-0.5b): ONNX Runtime (and tfjs) beside the PyTorch peer, tokens/s and GFLOP/s",
  usage: "prefill [--shapes smollm2-135m,qwen2.5-0.5b|reference] [--batch 1] [--seq 512] [--runs 5] [--warmup 1] " +
    "[--threads <cpus>] [--engines ort,tfjs] [--no-peer] [--peer-python /usr/bin/python3] [--no-calibrate]",
  options: ["shapes", "batch", "seq", "runs", "warmup", "threads", "engines", "no-calibrate", ...peerOptionNames],
  run: async (options: Options) => {
    const shapeNames = listOption(options, "shapes", ["smollm2-135m", "qwen2.5-0.5b"])
    const shapes = shapeNames.map((name) => ({ name, ...shapeOf(name) }))
    const batch = intOption(options, "batch", 1)
    // 512 tokens: an evaluation or calibration window of the length such passes use, long enough
    // that every product has 512 rows (compute-bound, as prefill is), short enough that a 0.5B
    // forward takes seconds on two cores.
    const seq = intOption(options, "seq", 512)
    const runs = intOption(options, "runs", 5)
    const warmup = intOption(options, "warmup", 1)
    const threads = intOption(options, "threads", cpus().length)
    if (batch < 1 || seq < 1 || runs < 1 || threads < 1) throw new Error("--batch, --seq, --runs and --threads must be at least 1")
    const askedEngines = options.get("engines") === undefined ? undefined : listOption(options, "engines", [])
    if (askedEngines !== undefined && askedEngines.length === 0) throw new Error("--engines needs at least one of ort, tfjs")
    for (const e of askedEngines ?? []) {
      if (!(engineNames as ReadonlyArray<string>).includes(e)) throw new Error(`--engines: "${e}" is not ${engineNames.join(" or ")}`)
    }
    if (options.has("no-calibrate") && options.get("no-calibrate") !== "true") throw new Error("--no-calibrate takes no value")
    const withPeer = peerEnabled(options)
    const withCalibration = !options.has("no-calibrate")
    for (const { name, config } of shapes) {
      if (seq > config.maxPositionEmbeddings) throw new Error(`--seq ${seq} is beyond ${name}'s ${config.maxPositionEmbeddings} positions (pass --seq ${config.maxPositionEmbeddings} or less with it)`)
    }
    const timing = { runs, warmup }
    if (withCalibration) progress("calibrating: wasm matMul in one thread, then in all at once")
    const calibrationBefore = withCalibration ? await calibrate() : undefined
    const results: Array<Record<string, unknown>> = []
    const peerRuns: Record<string, Record<string, PeerResult>> = {}
    for (const shape of shapes) {
      const engines: ReadonlyArray<Engine> = (askedEngines as Array<Engine> | undefined) ?? (shape.name === "reference" ? ["ort", "tfjs"] : ["ort"])
      const flops = forwardFlops(shape.config, batch, seq)
      const tokens = batch * seq
      const ids = tokenIds(shape.config, batch, seq)
      const rows: Array<Record<string, unknown> & { threads: number; tokensPerSecond: number }> = []
      for (const engine of engines) {
        progress(`prefill ${shape.name}: ${engine}, ${batch}×${seq} tokens, ${warmup} + ${runs} forwards`)
        const peakReset = resetPeakRss()
        const engineThreads = engine === "ort" ? threads : 1
        const measured = engine === "ort" ? await ortForward(shape, ids, threads, timing) : await tfjsForward(shape, ids, timing)
        const peak = peakRss()
        const ms = median(measured.times)
        // The engine's ceiling at this shape's largest product, right after its forwards.
        const ceiling = engine === "ort"
          ? await ortMatMulGflops(tokens, shape.config.hiddenSize, Math.max(...shape.config.layers.map((l) => l.intermediateSize)), threads)
          : undefined
        rows.push({
          shape: shape.name,
          engine,
          ...(engine === "ort"
            ? { backendDescription: `ONNX Runtime, CPU execution provider, ${threads} intra-op thread${threads === 1 ? "" : "s"}` }
            : { backendDescription: "simmer's tfjs transformer on the wasm backend (one thread)" }),
          threads: engineThreads,
          tokensPerSecond: Math.round(tokens / (ms / 1000)),
          msPerForward: { median: round(ms), min: round(Math.min(...measured.times)), max: round(Math.max(...measured.times)) },
          gflopsPerSecond: round(flops.total / 1e9 / (ms / 1000)),
          ...(ceiling !== undefined
            ? {
              ortMatMulCeiling: {
                product: `[${tokens}, ${shape.config.hiddenSize}]·[${shape.config.hiddenSize}, ${Math.max(...shape.config.layers.map((l) => l.intermediateSize))}]`,
                gflopsPerSecond: round(ceiling),
                forwardFraction: round(flops.total / 1e9 / (ms / 1000) / ceiling, 2)
              }
            }
            : {}),
          runs,
          warmup,
          // ort: drawing the weights, encoding the graph and opening the session; tfjs: drawing them into tensors.
          setupSeconds: round(measured.sessionSeconds, 2),
          rssAfterSetupGiB: gib(measured.rssAfterOpen),
          ...(peak !== undefined ? { [peakReset ? "peakRssGiB" : "peakRssGiBOfProcess"]: gib(peak) } : {})
        })
      }
      const peers = await peersAtThreads(`prefill ${shape.name}`, rows.map((r) => r.threads), withPeer, (t) => ({
        config: shape.config,
        mode: "infer",
        threads: t,
        batch,
        seq,
        // The decoding the peer's --mode infer also runs, at its cheapest.
        genBatch: 1,
        prompt: 1,
        newTokens: 1,
        genReps: 1,
        steps: runs,
        warmup,
        python: options.get("peer-python")
      }))
      peerRuns[shape.name] = peerRunsByThreads(peers)
      for (const row of rows) {
        const beside = besidePeer(row.tokensPerSecond, peers.get(row.threads)!, "infer_forward")
        const peerGflops = beside.peer.measured ? { gflopsPerSecond: round(flops.total / 1e9 / (tokens / beside.peer.tokensPerSecond)) } : {}
        results.push({ ...row, ...beside, peer: { ...beside.peer, ...peerGflops } })
      }
      progress(`prefill ${shape.name}: ${rows.map((r) => `${r.engine} ${r.tokensPerSecond} tokens/s`).join(", ")}`)
    }
    return {
      benchmark: "prefill",
      machine: {
        ...machineInfo(),
        ...(calibrationBefore !== undefined ? { calibrationBefore, calibrationAfter: await calibrate() } : {})
      },
      batch,
      seq,
      threads,
      shapes: Object.fromEntries(shapes.map(({ name, config }) => {
        const flops = forwardFlops(config, batch, seq)
        return [name, {
          ...describeConfig(config),
          gflopPerForward: { matMul: round(flops.matMul / 1e9, 2), attention: round(flops.attention / 1e9, 2), total: round(flops.total / 1e9, 2) }
        }]
      })),
      results,
      peer: {
        note: "PyTorch (bench/peer/torch_baseline.py, float32, eager) on the same CPU in this run: infer_forward, a no-grad forward " +
          "of the same batch × seq tokens at the same shape (no biases, head size d_model / heads, untied head: the same products), " +
          "its time is the mean of --runs forwards after --warmup (the rows above: the median); ratioToPeer = simmer's tokens/s over the peer's at the row's thread count",
        runs: peerRuns
      }
    }
  }
}
