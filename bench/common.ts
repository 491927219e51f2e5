/**
 * What every benchmark shares: the reference model, machine facts, timing statistics, option
 * parsing, progress on stderr (stdout carries only the JSON result), and backend selection.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, References } from "effect"
import { cpus, loadavg } from "node:os"
import { existsSync } from "node:fs"
import { Worker } from "node:worker_threads"
import { selectBackend } from "../src/compute/Backend.ts"
import { loadCheckpoint } from "../src/io/CheckpointReader.ts"
import { loadTokenizer, type Tokenizer } from "../src/io/Tokenizer.ts"
import { type ModelConfig, uniformConfig } from "../src/model/ModelConfig.ts"
import { countParams, initParams, type Params } from "../src/model/Params.ts"
import type { DeviceRoom } from "../src/model/DeviceRoom.ts"
import { Compute } from "../src/services/Compute.ts"
import { DeviceMemory } from "../src/services/DeviceMemory.ts"
import { baseModelConfig, baseTokenizer, defaultBaseRecipe } from "../src/tune/BaseTraining.ts"

/** The reference model: d_model 128, 4 layers, 4 heads, MLP 512, vocab 32. */
export const referenceConfig: ModelConfig = uniformConfig({
  architecture: "llama",
  vocabSize: 32,
  hiddenSize: 128,
  headDim: 32,
  rmsNormEps: 1e-5,
  ropeTheta: 10000,
  maxPositionEmbeddings: 128,
  tieWordEmbeddings: false,
  qkvBias: false,
  outputBias: false,
  mlpBias: false
}, { numLayers: 4, intermediateSize: 512, numHeads: 4, numKeyValueHeads: 4 })

export const describeConfig = (config: ModelConfig) => ({
  architecture: config.architecture,
  dModel: config.hiddenSize,
  layers: config.layers.length,
  heads: config.layers[0].numHeads,
  kvHeads: config.layers[0].numKeyValueHeads,
  headDim: config.headDim,
  mlp: config.layers[0].intermediateSize,
  vocab: config.vocabSize,
  parameters: countParams(config).total
})

export const machineInfo = () => {
  const list = cpus()
  return {
    cpus: list.length,
    cpuModel: list[0]?.model ?? "unknown",
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    /** Load averages at the start (1, 5, 15 min): other processes on a small machine skew timings. */
    loadavg: loadavg().map((x) => Math.round(x * 100) / 100)
  }
}

/**
 * What the machine delivers right now: the wasm matMul [1024,128]·[128,512] in GFLOP/s, timed
 * in one worker thread alone and then in N threads at once (N = cpus). On shared or SMT
 * machines the second figure shows how much a second engine can add; other processes and
 * neighbouring VMs move both, so benchmarks report them beside their results.
 */
export const calibrate = async (threads = cpus().length, ms = 1500) => {
  const round = async (count: number): Promise<Array<number>> => {
    const workers = Array.from({ length: count }, () =>
      new Worker(new URL("./calibrateWorker.ts", import.meta.url), { workerData: { ms } }))
    try {
      await Promise.all(workers.map((w) => new Promise((resolve, reject) => {
        w.once("message", resolve)
        w.once("error", reject)
      })))
      const results = workers.map((w) => new Promise<number>((resolve, reject) => {
        w.once("message", (m: { gflops: number }) => resolve(m.gflops))
        w.once("error", reject)
      }))
      for (const w of workers) w.postMessage("go")
      return (await Promise.all(results)).map((g) => Math.round(g * 10) / 10)
    } finally {
      await Promise.all(workers.map((w) => w.terminate()))
    }
  }
  const alone = await round(1)
  const together = threads > 1 ? await round(threads) : alone
  return { wasmMatMulGflops: { oneThread: alone[0], perThreadWhenAllBusy: together } }
}

export const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid] : (s[mid - 1] + s[mid]) / 2
}

export const round = (x: number, digits = 1): number => {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

/** Timing summary of per-step milliseconds. */
export const stepStats = (ms: ReadonlyArray<number>, tokensPerStep: number) => ({
  tokensPerSecond: Math.round((tokensPerStep / median(ms)) * 1000),
  msPerStep: { median: round(median(ms)), min: round(Math.min(...ms)), max: round(Math.max(...ms)) },
  steps: ms.length
})

export const progress = (message: string): void => {
  process.stderr.write(`${message}\n`)
}

/** Parsed `--name value` / `--flag` options after the benchmark's name. */
export type Options = ReadonlyMap<string, string>

export const parseOptions = (args: ReadonlyArray<string>): Options => {
  const options = new Map<string, string>()
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]
    if (!arg.startsWith("--")) throw new Error(`unexpected argument "${arg}"`)
    const eq = arg.indexOf("=")
    if (eq > 0) options.set(arg.slice(2, eq), arg.slice(eq + 1))
    else if (i + 1 < args.length && !args[i + 1].startsWith("--")) options.set(arg.slice(2), args[++i])
    else options.set(arg.slice(2), "true")
  }
  return options
}

export const intOption = (options: Options, name: string, fallback: number): number => {
  const raw = options.get(name)
  if (raw === undefined) return fallback
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got "${raw}"`)
  return n
}

/** A count with its own option and smaller default on the slow cpu backend (`--cpu-<name>`). */
export const backendIntOption = (options: Options, backend: string, name: string, fallback: number, cpuFallback: number): number =>
  backend === "cpu" ? intOption(options, `cpu-${name}`, cpuFallback) : intOption(options, name, fallback)

export const listOption = (options: Options, name: string, fallback: ReadonlyArray<string>): Array<string> =>
  (options.get(name)?.split(",").map((s) => s.trim()).filter((s) => s !== "") ?? [...fallback])

/** Effects run by benchmarks: logs go to stderr, stdout stays JSON. */
export const run = <A, E>(effect: Effect.Effect<A, E>): Promise<A> =>
  Effect.runPromise(effect.pipe(Effect.provideService(References.LogToStderr, true)))

// The backend useBackend chose, for benchRoom's budget.
let chosen: Compute["Service"] | undefined

/** Selects and initialises a tfjs backend (with simmer's kernels) and returns its description. */
export const useBackend = async (backend: string): Promise<string> => {
  const compute = await run(selectBackend(backend))
  chosen = compute
  return compute.description
}

export const numTensors = () => tf.memory().numTensors

/** The device budget simmer gives the backend useBackend chose (SIMMER_MEMORY_GB, else the backend's own). */
export const benchRoom = (): Promise<DeviceRoom> => {
  if (chosen === undefined) throw new Error("benchRoom: call useBackend first")
  return run(Effect.map(DeviceMemory, (memory) => memory.room).pipe(
    Effect.provide(DeviceMemory.layer()),
    Effect.provideService(Compute, chosen)
  ))
}

/** A benchmark: a name, a one-line summary, and a function from options to a JSON-able result. */
export interface Benchmark {
  readonly summary: string
  readonly usage: string
  /** Names of the options it reads; when given, anything else is rejected as a typo. */
  readonly options?: ReadonlyArray<string>
  readonly run: (options: Options) => Promise<unknown>
}

export interface BenchModel {
  readonly source: string
  readonly config: ModelConfig
  readonly params: Params
  readonly tokenizer: Tokenizer
}

/**
 * The model a benchmark measures: a checkpoint folder (normally the bundled base model), or, when
 * it does not exist, a freshly initialised model of the base recipe's shape.
 */
export const loadBenchModel = async (dir: string): Promise<BenchModel> => {
  if (existsSync(dir)) {
    const checkpoint = await run(loadCheckpoint(dir))
    const tokenizer = await run(loadTokenizer(dir))
    return { source: dir, config: checkpoint.config, params: checkpoint.params, tokenizer }
  }
  const config = baseModelConfig(defaultBaseRecipe)
  return {
    source: `${dir} not found: a fresh model of the base recipe's shape`,
    config,
    params: initParams(config, defaultBaseRecipe.seed),
    tokenizer: baseTokenizer()
  }
}
