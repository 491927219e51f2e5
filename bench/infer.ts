/**
 * Greedy decoding throughput with the KV cache: a batch of prompts, one prefill forward, then
 * one position per step (src/model/Generate.ts). Tokens per second counts generated tokens;
 * the time covers the whole call (prefill included), as a user of `generate` sees it.
 */
import { Effect } from "effect"
import { generate } from "../src/model/Generate.ts"
import { disposeParams, initParams } from "../src/model/Params.ts"
import { Rng } from "../src/model/Rng.ts"
import {
  backendIntOption,
  type Benchmark,
  calibrate,
  describeConfig,
  intOption,
  listOption,
  machineInfo,
  numTensors,
  type Options,
  progress,
  referenceConfig,
  stepStats,
  useBackend
} from "./common.ts"

interface RunSpec {
  readonly backend: string
  readonly runs: number
  readonly warmup: number
  readonly batchSize: number
  readonly promptLength: number
  readonly newTokens: number
}

const inferRun = async (spec: RunSpec) => {
  const config = referenceConfig
  const backendDescription = await useBackend(spec.backend)
  const params = initParams(config, 1)
  const rng = Rng.seeded(11)
  const prompts = Array.from({ length: spec.batchSize }, () =>
    Array.from({ length: spec.promptLength }, () => rng.int(config.vocabSize)))
  const times: Array<number> = []
  let generated = 0
  const tensorsBefore = numTensors()
  for (let i = 0; i < spec.warmup + spec.runs; i++) {
    const started = performance.now()
    const out = await Effect.runPromise(generate(config, params, prompts, { temperature: 0, topP: 1, maxNewTokens: spec.newTokens }))
    const elapsed = performance.now() - started
    generated = out.reduce((n, seq) => n + seq.length, 0)
    if (i >= spec.warmup) times.push(elapsed)
    progress(`  ${spec.backend} run ${i + 1}/${spec.warmup + spec.runs}: ${elapsed.toFixed(0)} ms${i < spec.warmup ? " (warm-up)" : ""}`)
  }
  const leaked = numTensors() - tensorsBefore
  disposeParams(config, params)
  const stats = stepStats(times, generated)
  return {
    backend: spec.backend,
    backendDescription,
    tokensPerSecond: stats.tokensPerSecond,
    msPerCall: stats.msPerStep,
    msPerDecodeStep: Math.round((stats.msPerStep.median / spec.newTokens) * 100) / 100,
    calls: stats.steps,
    warmup: spec.warmup,
    generatedTokensPerCall: generated,
    tensorsLeaked: leaked
  }
}

export const infer: Benchmark = {
  summary: "greedy decoding throughput with the KV cache (batch 16, prompt 16, 48 new tokens)",
  usage: "infer [--backends wasm,cpu] [--runs N] [--warmup N] [--cpu-runs N] [--batch 16] [--prompt 16] [--new 48]",
  options: ["backends", "runs", "warmup", "cpu-runs", "cpu-warmup", "batch", "prompt", "new"],
  run: async (options: Options) => {
    const backends = listOption(options, "backends", ["wasm", "cpu"])
    const batchSize = intOption(options, "batch", 16)
    const promptLength = intOption(options, "prompt", 16)
    const newTokens = intOption(options, "new", 48)
    progress("calibrating: wasm matMul in one thread, then in all at once")
    const calibrationBefore = await calibrate()
    const results = []
    for (const backend of backends) {
      const runs = backendIntOption(options, backend, "runs", 10, 3)
      const warmup = backendIntOption(options, backend, "warmup", 2, 1)
      progress(`infer: ${backend}, ${warmup} + ${runs} calls`)
      results.push(await inferRun({ backend, runs, warmup, batchSize, promptLength, newTokens }))
    }
    return {
      benchmark: "infer",
      machine: { ...machineInfo(), calibrationBefore, calibrationAfter: await calibrate() },
      config: { ...describeConfig(referenceConfig), batch: batchSize, promptLength, newTokens, sampling: "greedy" },
      results,
      peer: { note: "PyTorch (OpenBLAS) on the same CPU, figure from the issue", decodeTokensPerSecond: 11500 }
    }
  }
}
