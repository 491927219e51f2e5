/**
 * Training-step throughput: forward + backward through the Gradients service (in-thread, or
 * data-parallel over worker threads) + a plain Adam update on the main thread's engine. Only
 * the loss is read back from the step. Tokens per step = batch × sequence (input positions).
 * The PyTorch peer (bench/peer.ts: forward + backward + AdamW) trains the same shape, batch and
 * sequence in the same run, at each row's thread count (one in-thread, `--workers` with workers),
 * for a ratio beside each row.
 */
import * as tf from "@tensorflow/tfjs"
import { Context, Effect, Layer, Scope } from "effect"
import { availableParallelism } from "node:os"
import type { TokenBatch } from "../src/model/Gradients.ts"
import { assembleParams, initParams, paramSpecs, paramTensors } from "../src/model/Params.ts"
import { Rng } from "../src/model/Rng.ts"
import { Gradients } from "../src/services/Gradients.ts"
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
  run,
  stepStats,
  useBackend
} from "./common.ts"
import { Compute } from "../src/services/Compute.ts"
import { besidePeer, peerEnabled, peerOptionNames, peerRunsByThreads, peersAtThreads } from "./peer.ts"

/**
 * Adam (Kingma & Ba) with bias correction, the benchmark's minimal honest update: tfjs ops on
 * the parameters' own engine (the main thread's), nothing read back. About 15 ms per step for
 * the reference model's 1.06 M parameters on wasm (12 memory-bound passes per parameter; a
 * fused single pass measured 10 ms, not worth a backend-specific kernel here).
 */
const adam = (lr = 1e-3, beta1 = 0.9, beta2 = 0.999, eps = 1e-8) => {
  let m: Array<tf.Tensor> = []
  let v: Array<tf.Tensor> = []
  let t = 0
  return {
    step(params: ReadonlyArray<tf.Tensor>, grads: ReadonlyArray<tf.Tensor>): Array<tf.Tensor> {
      if (t === 0) {
        m = params.map((p) => tf.zerosLike(p))
        v = params.map((p) => tf.zerosLike(p))
      }
      t++
      const stepSize = (lr * Math.sqrt(1 - beta2 ** t)) / (1 - beta1 ** t)
      const next = tf.tidy(() => {
        // Scalars once per step, not once per parameter and op.
        const [b1, c1, b2, c2, e, a] = [beta1, 1 - beta1, beta2, 1 - beta2, eps, stepSize].map((x) => tf.scalar(x))
        return params.map((p, i) => {
          const g = grads[i]
          const mi = tf.add(tf.mul(m[i], b1), tf.mul(g, c1))
          const vi = tf.add(tf.mul(v[i], b2), tf.mul(tf.square(g), c2))
          const pi = tf.sub(p, tf.mul(tf.div(mi, tf.add(tf.sqrt(vi), e)), a))
          return { mi, vi, pi }
        })
      })
      tf.dispose([...m, ...v])
      m = next.map((n) => n.mi)
      v = next.map((n) => n.vi)
      return next.map((n) => n.pi)
    },
    dispose() {
      tf.dispose([...m, ...v])
    }
  }
}

const randomBatches = (count: number, batchSize: number, seqLen: number, vocab: number, seed: number): Array<TokenBatch> => {
  const rng = Rng.seeded(seed)
  return Array.from({ length: count }, () => ({
    ids: Int32Array.from({ length: batchSize * seqLen }, () => rng.int(vocab)),
    batchSize,
    seqLen
  }))
}

interface RunSpec {
  readonly backend: string
  readonly mode: "local" | "workers"
  readonly workers: number
  readonly steps: number
  readonly warmup: number
  readonly batchSize: number
  readonly seqLen: number
}

const trainRun = async (spec: RunSpec) => {
  const config = referenceConfig
  const backendDescription = await useBackend(spec.backend)
  const gradientsLayer = spec.mode === "local"
    ? Gradients.layerLocal
    : Gradients.layerDataParallel({ workers: spec.workers, backend: spec.backend })
  const batches = randomBatches(4, spec.batchSize, spec.seqLen + 1, config.vocabSize, 7)
  const tokensPerStep = spec.batchSize * spec.seqLen
  return run(Effect.scoped(Effect.gen(function*() {
    const scope = yield* Scope.Scope
    const context = yield* Layer.buildWithScope(gradientsLayer.pipe(Layer.provide(Compute.layer(spec.backend))), scope)
    const gradients = Context.get(context, Gradients)
    const specs = paramSpecs(config)
    const index = new Map(specs.map((s, i) => [s.name, i]))
    let tensors = paramTensors(config, initParams(config, 1))
    const optimizer = adam()
    const losses: Array<number> = []
    const times: Array<number> = []
    const gradientTimes: Array<number> = []
    const updateTimes: Array<number> = []
    let tensorsAfterWarmup = 0
    for (let i = 0; i < spec.warmup + spec.steps; i++) {
      if (i === spec.warmup) tensorsAfterWarmup = numTensors()
      const started = performance.now()
      const params = assembleParams(config, (name) => tensors[index.get(name)!])
      const result = yield* gradients.lossAndGradients(config, params, batches[i % batches.length])
      const computed = performance.now()
      const next = optimizer.step(tensors, result.grads)
      tf.dispose([...tensors, ...result.grads])
      tensors = next
      const elapsed = performance.now() - started
      losses.push(result.loss)
      if (i >= spec.warmup) {
        times.push(elapsed)
        gradientTimes.push(computed - started)
        updateTimes.push(elapsed - (computed - started))
      }
      progress(`  ${spec.backend} ${spec.mode} step ${i + 1}/${spec.warmup + spec.steps}: ${elapsed.toFixed(0)} ms, loss ${result.loss.toFixed(4)}${i < spec.warmup ? " (warm-up)" : ""}`)
    }
    const leaked = numTensors() - tensorsAfterWarmup
    optimizer.dispose()
    tf.dispose(tensors)
    return {
      backend: spec.backend,
      backendDescription,
      gradients: gradients.description,
      ...stepStats(times, tokensPerStep),
      /** Medians of the step's two parts: loss and gradients (the service), and the Adam update. */
      msGradients: round(median(gradientTimes)),
      msUpdate: round(median(updateTimes)),
      warmup: spec.warmup,
      loss: { first: round(losses[0], 4), last: round(losses[losses.length - 1], 4) },
      tensorsLeaked: leaked
    }
  })))
}

export const train: Benchmark = {
  summary: "training-step throughput (forward + backward + Adam) of the reference model",
  usage: "train [--backends wasm,cpu] [--modes local,workers] [--workers N] [--steps N] [--warmup N] " +
    "[--cpu-steps N] [--cpu-warmup N] [--batch 16] [--seq 64] [--no-peer] [--peer-python /usr/bin/python3]",
  options: ["backends", "modes", "workers", "steps", "warmup", "cpu-steps", "cpu-warmup", "batch", "seq", ...peerOptionNames],
  run: async (options: Options) => {
    const backends = listOption(options, "backends", ["wasm", "cpu"])
    const modes = listOption(options, "modes", ["local", "workers"])
    for (const mode of modes) {
      if (mode !== "local" && mode !== "workers") throw new Error(`--modes: unknown mode "${mode}" (local, workers)`)
    }
    const workers = intOption(options, "workers", availableParallelism())
    const batchSize = intOption(options, "batch", 16)
    const seqLen = intOption(options, "seq", 64)
    const withPeer = peerEnabled(options)
    progress("calibrating: wasm matMul in one thread, then in all at once")
    const calibrationBefore = await calibrate()
    const results = []
    for (const backend of backends) {
      const steps = backendIntOption(options, backend, "steps", 10, 3)
      const warmup = backendIntOption(options, backend, "warmup", 3, 1)
      for (const mode of modes as Array<"local" | "workers">) {
        progress(`train: ${backend}, ${mode === "local" ? "in-thread" : `${workers} workers`}, ${warmup} + ${steps} steps`)
        // In-thread: one thread computes; data-parallel: one per worker.
        const threads = mode === "local" ? 1 : workers
        results.push({ mode, threads, ...(await trainRun({ backend, mode, workers, steps, warmup, batchSize, seqLen })) })
      }
    }
    // The peer at each thread count a row used, in this run, at the same shape, batch and sequence.
    const peers = await peersAtThreads("train", results.map((r) => r.threads), withPeer, (threads) => ({
      config: referenceConfig,
      mode: "train",
      threads,
      batch: batchSize,
      seq: seqLen,
      steps: intOption(options, "steps", 10),
      warmup: intOption(options, "warmup", 3),
      python: options.get("peer-python")
    }))
    return {
      benchmark: "train",
      machine: { ...machineInfo(), calibrationBefore, calibrationAfter: await calibrate() },
      config: { ...describeConfig(referenceConfig), batch: batchSize, seqLen, tokensPerStep: batchSize * seqLen },
      optimizer: "Adam (lr 1e-3), tfjs ops on the main thread",
      results: results.map((r) => ({ ...r, ...besidePeer(r.tokensPerSecond, peers.get(r.threads)!, "train") })),
      peer: {
        note: "PyTorch (bench/peer/torch_baseline.py, forward + backward + AdamW) on the same CPU in this run at the same " +
          "shape, batch and sequence; ratioToPeer = simmer's tokens/s over the peer's at the row's thread count",
        runs: peerRunsByThreads(peers)
      }
    }
  }
}
