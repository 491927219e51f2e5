/**
 * Entry point of a data-parallel Gradients worker: its own tfjs engine (same backend and
 * kernels as the main thread, through the live Compute selection), parameters rebuilt from
 * shared memory when their version changes, and loss and gradients of its rows of each batch
 * written back to shared memory, scaled by the weight the main thread gave it.
 *
 * Runs as TypeScript through Node's type stripping, like the rest of the project.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, References } from "effect"
import { parentPort, workerData } from "node:worker_threads"
import { lossAndGradients } from "../model/Gradients.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { assembleParams, type Params } from "../model/Params.ts"
import { selectBackend } from "./Backend.ts"
import { type ComputeRequest, copyTensorInto, paramLayout, type WorkerOptions, type WorkerReply } from "./GradientProtocol.ts"

const port = parentPort
if (port === null) throw new Error("GradientsWorker.ts must run in a worker thread")

const reply = (message: WorkerReply) => port.postMessage(message)

interface Loaded {
  readonly version: number
  readonly params: Params
  readonly tensors: ReadonlyArray<tf.Tensor>
}

let loaded: Loaded | undefined

/**
 * Parameters of the request's version, rebuilt from shared memory when it changed. (By version
 * only: every message brings a new SharedArrayBuffer object for the same memory, and the main
 * thread bumps the version whenever it writes or replaces the buffer.)
 */
const paramsFor = (request: ComputeRequest): Params => {
  if (loaded !== undefined && loaded.version === request.weightsVersion) return loaded.params
  if (loaded !== undefined) tf.dispose(loaded.tensors as Array<tf.Tensor>)
  loaded = undefined
  const layout = paramLayout(request.config)
  // The cpu backend keeps the array it is given; every other backend copies it in.
  const copy = tf.getBackend() === "cpu"
  const byName = new Map<string, tf.Tensor>()
  for (const entry of layout.entries) {
    const view = new Float32Array(request.weights, entry.offset * 4, entry.size)
    byName.set(entry.name, tf.tensor(copy ? view.slice() : view, entry.shape as Array<number>, "float32"))
  }
  const params = assembleParams(request.config, (name) => byName.get(name)!)
  loaded = { version: request.weightsVersion, params, tensors: [...byName.values()] }
  return params
}

const compute = async (request: ComputeRequest): Promise<WorkerReply> => {
  const config: ModelConfig = request.config
  const params = paramsFor(request)
  const result = await Effect.runPromise(lossAndGradients(config, params, {
    ids: request.ids,
    batchSize: request.batchSize,
    seqLen: request.seqLen,
    ...(request.targetWeights === undefined ? {} : { weights: request.targetWeights })
  }))
  try {
    const layout = paramLayout(config)
    const out = new Float32Array(request.grads)
    const scale = request.scale
    const scaled = scale === 1 ? result.grads : tf.tidy(() => result.grads.map((g) => tf.mul(g, scale)))
    try {
      for (let i = 0; i < scaled.length; i++) await copyTensorInto(scaled[i], out, layout.entries[i].offset)
    } finally {
      if (scaled !== result.grads) tf.dispose(scaled)
    }
  } finally {
    tf.dispose(result.grads)
  }
  return { type: "done", seq: request.seq, loss: result.loss, targets: result.targets }
}

/** The message of a failure: Effect.runPromise rejects with a squashed cause, usually an Error. */
const failureMessage = (cause: unknown): string => cause instanceof Error ? cause.message : String(cause)

const start = async () => {
  const options = workerData as WorkerOptions
  const selected = await Effect.runPromise(
    selectBackend(options.backend).pipe(Effect.provideService(References.MinimumLogLevel, "Warn"))
  )
  reply({ type: "ready", description: selected.description })
}

start().then(
  () => {
    // Requests are computed one after another, as when compute was synchronous (reads now await).
    let queue: Promise<void> = Promise.resolve()
    port.on("message", (request: ComputeRequest) => {
      queue = queue.then(() =>
        compute(request).then(reply, (cause: unknown) => {
          reply({ type: "failed", seq: request.seq, message: failureMessage(cause) })
        })
      )
    })
  },
  (cause: unknown) => {
    const message = typeof cause === "object" && cause !== null && "message" in cause ? String(cause.message) : String(cause)
    reply({ type: "failed", message: `the worker's tfjs backend did not initialise: ${message}` })
  }
)
