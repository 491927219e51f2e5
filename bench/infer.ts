/**
 * Greedy decoding throughput with the KV cache: a batch of prompts, one prefill forward, then
 * one position per step, on each engine: simmer's tfjs transformer on each backend
 * (src/model/Generate.ts) and ONNX Runtime's CPU execution provider on the same model's ONNX
 * graph (src/onnx/OrtGenerate.ts), whose greedy tokens must match tfjs's. Tokens per second
 * counts generated tokens; the time covers the whole call (prefill included), as a user of
 * `generate` sees it. The PyTorch peer (bench/peer.ts) decodes the same shape, batch, prompt
 * length and new tokens in the same run, at each row's thread count, for a ratio beside each row.
 */
import { Effect } from "effect"
import { generate } from "../src/model/Generate.ts"
import { disposeParams, initParams } from "../src/model/Params.ts"
import { Rng } from "../src/model/Rng.ts"
import { modelOnnx } from "../src/onnx/ModelGraph.ts"
import { openDecoderSession, ortProviderBeside } from "../src/onnx/OrtDecoder.ts"
import { generateGreedyOrt } from "../src/onnx/OrtGenerate.ts"
import { besidePeer, peerEnabled, peerOptionNames, peerRunsByThreads, peersAtThreads } from "./peer.ts"
import {
  backendIntOption,
  type Benchmark,
  calibrate,
  describeConfig,
  intOption,
  listOption,
  machineInfo,
  median,
  numTensors,
  type Options,
  progress,
  referenceConfig,
  round,
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

/** The same prompts for every engine, so that their greedy tokens can be compared. */
const referencePrompts = (batchSize: number, promptLength: number): Array<Array<number>> => {
  const rng = Rng.seeded(11)
  return Array.from({ length: batchSize }, () =>
    Array.from({ length: promptLength }, () => rng.int(referenceConfig.vocabSize)))
}

const inferRun = async (spec: RunSpec) => {
  const config = referenceConfig
  const backendDescription = await useBackend(spec.backend)
  const params = initParams(config, 1)
  const prompts = referencePrompts(spec.batchSize, spec.promptLength)
  const times: Array<number> = []
  let generated = 0
  let ids: Array<Array<number>> = []
  const tensorsBefore = numTensors()
  for (let i = 0; i < spec.warmup + spec.runs; i++) {
    const started = performance.now()
    const out = await Effect.runPromise(generate(config, params, prompts, { temperature: 0, topP: 1, maxNewTokens: spec.newTokens }))
    const elapsed = performance.now() - started
    generated = out.reduce((n, seq) => n + seq.length, 0)
    ids = out
    if (i >= spec.warmup) times.push(elapsed)
    progress(`  ${spec.backend} run ${i + 1}/${spec.warmup + spec.runs}: ${elapsed.toFixed(0)} ms${i < spec.warmup ? " (warm-up)" : ""}`)
  }
  const leaked = numTensors() - tensorsBefore
  disposeParams(config, params)
  const stats = stepStats(times, generated)
  return {
    ids,
    row: {
      engine: "tfjs",
      backend: spec.backend,
      backendDescription,
      // simmer's wasm and cpu backends compute in the calling thread.
      threads: 1,
      tokensPerSecond: stats.tokensPerSecond,
      msPerCall: stats.msPerStep,
      msPerDecodeStep: Math.round((stats.msPerStep.median / spec.newTokens) * 100) / 100,
      calls: stats.steps,
      warmup: spec.warmup,
      generatedTokensPerCall: generated,
      tensorsLeaked: leaked
    }
  }
}

interface OrtSpec extends Omit<RunSpec, "backend"> {
  readonly threads: number
  /** The tfjs backend that holds the weights while they are written into the ONNX graph (webgpu: ONNX Runtime on its WebGPU provider too). */
  readonly weightsBackend: string
}

/** ONNX Runtime's greedy decoding of the same model (initParams seed 1) and prompts. */
const ortRun = async (spec: OrtSpec) => {
  const config = referenceConfig
  await useBackend(spec.weightsBackend)
  const params = initParams(config, 1)
  const bytes = await Effect.runPromise(modelOnnx({ config, params }))
  disposeParams(config, params)
  // Beside the webgpu backend ONNX Runtime computes on its WebGPU execution provider, as a run's would.
  const provider = ortProviderBeside(spec.weightsBackend)
  const session = await openDecoderSession(bytes, { threads: spec.threads, provider })
  const prompts = referencePrompts(spec.batchSize, spec.promptLength)
  const times: Array<number> = []
  let ids: Array<Array<number>> = []
  try {
    for (let i = 0; i < spec.warmup + spec.runs; i++) {
      const started = performance.now()
      ids = await generateGreedyOrt(session, config, prompts, spec.newTokens, [])
      const elapsed = performance.now() - started
      if (i >= spec.warmup) times.push(elapsed)
      progress(`  ort run ${i + 1}/${spec.warmup + spec.runs}: ${elapsed.toFixed(0)} ms${i < spec.warmup ? " (warm-up)" : ""}`)
    }
  } finally {
    await session.release()
  }
  const generated = ids.reduce((n, seq) => n + seq.length, 0)
  const stats = stepStats(times, generated)
  return {
    ids,
    row: {
      engine: "ort",
      backendDescription: `ONNX Runtime, ${provider === "webgpu" ? "WebGPU" : "CPU"} execution provider`,
      threads: spec.threads,
      tokensPerSecond: stats.tokensPerSecond,
      msPerCall: stats.msPerStep,
      msPerDecodeStep: Math.round((stats.msPerStep.median / spec.newTokens) * 100) / 100,
      calls: stats.steps,
      warmup: spec.warmup,
      generatedTokensPerCall: generated
    }
  }
}

/** How many sequences of `b` differ from `a`'s (same prompts, greedy): 0 when the engines agree. */
const sequencesDiffering = (a: ReadonlyArray<ReadonlyArray<number>>, b: ReadonlyArray<ReadonlyArray<number>>): number =>
  a.filter((seq, i) => seq.length !== b[i]?.length || seq.some((t, j) => t !== b[i][j])).length

export const infer: Benchmark = {
  summary: "greedy decoding throughput with the KV cache (batch 16, prompt 16, 48 new tokens)",
  usage: "infer [--backends wasm,cpu] [--engines tfjs,ort] [--ort-threads 1] [--runs N] [--warmup N] [--cpu-runs N] " +
    "[--batch 16] [--prompt 16] [--new 48] [--rounds 1] [--no-peer] [--peer-python /usr/bin/python3]",
  options: ["backends", "engines", "ort-threads", "runs", "warmup", "cpu-runs", "cpu-warmup", "batch", "prompt", "new", "rounds", ...peerOptionNames],
  run: async (options: Options) => {
    const backends = listOption(options, "backends", ["wasm", "cpu"])
    const engines = listOption(options, "engines", ["tfjs", "ort"])
    for (const e of engines) if (e !== "tfjs" && e !== "ort") throw new Error(`--engines: "${e}" is not tfjs or ort`)
    const ortThreads = intOption(options, "ort-threads", 1)
    if (ortThreads < 1) throw new Error("--ort-threads must be at least 1")
    const batchSize = intOption(options, "batch", 16)
    const promptLength = intOption(options, "prompt", 16)
    const newTokens = intOption(options, "new", 48)
    const withPeer = peerEnabled(options)
    progress("calibrating: wasm matMul in one thread, then in all at once")
    const calibrationBefore = await calibrate()
    const runs = intOption(options, "runs", 10)
    const warmup = intOption(options, "warmup", 2)
    // On a shared machine the speed drifts between the engines' runs and the peer's; rounds of
    // both, one after the other, give a ratio per round and their median.
    const rounds = intOption(options, "rounds", 1)
    if (rounds < 1) throw new Error("--rounds must be at least 1")
    const measureRound = async (index: number) => {
      if (rounds > 1) progress(`infer: round ${index + 1}/${rounds}`)
      const measured: Array<{ ids: Array<Array<number>>; row: Record<string, unknown> & { threads: number; tokensPerSecond: number } }> = []
      const tfjsIds = new Map<string, Array<Array<number>>>()
      if (engines.includes("tfjs")) {
        for (const backend of backends) {
          const backendRuns = backendIntOption(options, backend, "runs", 10, 3)
          const backendWarmup = backendIntOption(options, backend, "warmup", 2, 1)
          progress(`infer: tfjs on ${backend}, ${backendWarmup} + ${backendRuns} calls`)
          const result = await inferRun({ backend, runs: backendRuns, warmup: backendWarmup, batchSize, promptLength, newTokens })
          tfjsIds.set(backend, result.ids)
          measured.push(result)
        }
      }
      if (engines.includes("ort")) {
        progress(`infer: ONNX Runtime (${ortThreads} thread${ortThreads === 1 ? "" : "s"}), ${warmup} + ${runs} calls`)
        const result = await ortRun({ runs, warmup, batchSize, promptLength, newTokens, threads: ortThreads, weightsBackend: backends[0] ?? "wasm" })
        const matches = Object.fromEntries([...tfjsIds].map(([backend, ids]) => {
          const differing = sequencesDiffering(ids, result.ids)
          return [backend, { identical: differing === 0, sequencesDiffering: differing }]
        }))
        measured.push({ ids: result.ids, row: { ...result.row, greedyIdsMatchTfjs: matches } })
      }
      // The peer at each thread count a row used, in this run, at the same shape and decoding.
      const peers = await peersAtThreads("infer", measured.map((m) => m.row.threads), withPeer, (threads) => ({
        config: referenceConfig,
        mode: "infer",
        threads,
        batch: batchSize,
        seq: promptLength + newTokens,
        genBatch: batchSize,
        prompt: promptLength,
        newTokens,
        steps: runs,
        warmup,
        genReps: runs,
        python: options.get("peer-python")
      }))
      return measured.map(({ row }) => ({ ...row, ...besidePeer(row.tokensPerSecond, peers.get(row.threads)!, "infer_generate"), peerRun: peers.get(row.threads)! }))
    }
    const byRound: Array<Awaited<ReturnType<typeof measureRound>>> = []
    for (let r = 0; r < rounds; r++) byRound.push(await measureRound(r))
    return {
      benchmark: "infer",
      machine: { ...machineInfo(), calibrationBefore, calibrationAfter: await calibrate() },
      config: { ...describeConfig(referenceConfig), batch: batchSize, promptLength, newTokens, sampling: "greedy" },
      results: rounds === 1
        ? byRound[0].map(({ peerRun: _, ...row }) => row)
        : byRound[0].map((first, i) => {
          // The first round's row, with the medians over rounds and every round's figures.
          const { peerRun: _, peer: _peer, ratioToPeer: _ratio, ...row } = first
          const ratios = byRound.flatMap((rows) => (rows[i].ratioToPeer === undefined ? [] : [rows[i].ratioToPeer]))
          return {
            ...row,
            tokensPerSecond: median(byRound.map((rows) => rows[i].tokensPerSecond)),
            byRound: byRound.map((rows) => ({ tokensPerSecond: rows[i].tokensPerSecond, peer: rows[i].peer, ratioToPeer: rows[i].ratioToPeer })),
            ...(ratios.length > 0 ? { ratioToPeer: round(median(ratios), 2), ratioToPeerRange: [Math.min(...ratios), Math.max(...ratios)] } : {})
          }
        }),
      peer: {
        note: "PyTorch (bench/peer/torch_baseline.py) on the same CPU in this run, greedy KV-cache decoding at the same " +
          "shape, batch, prompt length and new tokens (generated tokens over the whole call, prefill included, as in the rows above); " +
          "ratioToPeer = simmer's tokens/s over the peer's at the row's thread count" +
          (rounds > 1 ? `; with --rounds, the median of the ${rounds} rounds' ratios (each round: every engine, then the peer)` : ""),
        runs: rounds === 1
          ? peerRunsByThreads(new Map(byRound[0].map((row) => [row.threads, row.peerRun])))
          : byRound.map((rows) => peerRunsByThreads(new Map(rows.map((row) => [row.threads, row.peerRun]))))
      }
    }
  }
}
