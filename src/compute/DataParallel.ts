/**
 * Data-parallel gradients over worker threads: the tfjs wasm backend runs one thread per engine in Node, so each worker
 * (GradientWorker.ts) owns an engine with the same backend and kernels. Per call the
 * parameters are copied once into a SharedArrayBuffer (skipped when the same tensors are passed
 * again), the batch is split by rows, each worker writes its gradients, pre-scaled by its share
 * of the counted targets, into its own SharedArrayBuffer, and the shares are summed here.
 *
 * Why the weighting is exact: the loss of a shard i is S_i / max(t_i, 1), with S_i its sum of
 * weighted token losses and t_i its counted targets (nextTokenLoss), and the batch's loss is
 * ΣS_i / max(Σt_i, 1). So shard gradients scaled by max(t_i, 1) / max(t, 1) sum to the
 * single-thread gradient, up to float summation order — also for shards without targets.
 *
 * Workers are a scoped resource: spawned when the service starts (failing it if a backend
 * does not initialise in a worker), terminated when its scope closes.
 */
import * as tf from "@tensorflow/tfjs"
import { Effect, Semaphore } from "effect"
import { availableParallelism } from "node:os"
import { Worker } from "node:worker_threads"
import { countedTargets, GradientsFailed, type TokenBatch } from "../model/Gradients.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { type Params, paramTensors } from "../model/Params.ts"
// Types only: services/Gradients.ts builds its data-parallel layer from this file.
import type { Gradients } from "../services/Gradients.ts"
import { type ComputeRequest, copyTensorInto, paramLayout, type WorkerOptions, type WorkerReply } from "./GradientProtocol.ts"

const messageOf = (cause: unknown): string =>
  cause instanceof Error ? cause.message : typeof cause === "object" && cause !== null && "message" in cause
    ? String(cause.message)
    : String(cause)

type Done = Extract<WorkerReply, { type: "done" }>

/** One worker and its outstanding requests. */
class WorkerHandle {
  readonly worker: Worker
  /** Gradient output; reallocated when the parameter count changes. */
  grads: SharedArrayBuffer = new SharedArrayBuffer(0)
  description = ""
  private readonly pending = new Map<number, { resolve: (reply: Done) => void; reject: (error: Error) => void }>()
  private failure: string | undefined
  private readonly ready: Promise<void>

  constructor(options: WorkerOptions) {
    this.worker = new Worker(new URL("./GradientWorker.ts", import.meta.url), { workerData: options })
    this.ready = new Promise<void>((resolve, reject) => {
      this.worker.on("message", (reply: WorkerReply) => {
        if (reply.type === "ready") {
          this.description = reply.description
          resolve()
        } else if (reply.type === "done") {
          this.pending.get(reply.seq)?.resolve(reply)
          this.pending.delete(reply.seq)
        } else if (reply.seq === undefined) {
          this.fail(reply.message)
          reject(new Error(reply.message))
        } else {
          this.pending.get(reply.seq)?.reject(new Error(reply.message))
          this.pending.delete(reply.seq)
        }
      })
      this.worker.on("error", (error) => {
        this.fail(`worker crashed: ${error.message}`)
        reject(error)
      })
      this.worker.on("exit", (code) => {
        this.fail(`worker exited (code ${code})`)
        reject(new Error(`worker exited (code ${code}) before it was ready`))
      })
    })
  }

  private fail(message: string) {
    this.failure ??= message
    for (const { reject } of this.pending.values()) reject(new Error(message))
    this.pending.clear()
  }

  whenReady(): Promise<void> {
    return this.ready
  }

  request(request: ComputeRequest): Promise<Done> {
    if (this.failure !== undefined) return Promise.reject(new Error(this.failure))
    return new Promise<Done>((resolve, reject) => {
      this.pending.set(request.seq, { resolve, reject })
      this.worker.postMessage(request)
    })
  }
}

export interface DataParallelOptions {
  /** Worker threads; default: the machine's available parallelism. */
  readonly workers?: number
  /** Backend of the workers' engines; default: the main thread's (Compute). */
  readonly backend?: string
}

/** Rows [start, end) of each shard: as even as possible, no empty shards. */
const splitRows = (rows: number, parts: number): Array<[number, number]> => {
  const n = Math.max(1, Math.min(parts, rows))
  return Array.from({ length: n }, (_, i) => [Math.floor((i * rows) / n), Math.floor(((i + 1) * rows) / n)])
}

/** The rows [start, end) of a batch, as its own (copied, so postMessage clones only them) batch. */
const shardOf = (batch: TokenBatch, [start, end]: [number, number]): TokenBatch => {
  const T = batch.seqLen
  return {
    ids: batch.ids.slice(start * T, end * T),
    ...(batch.weights === undefined ? {} : { weights: batch.weights.slice(start * (T - 1), end * (T - 1)) }),
    batchSize: end - start,
    seqLen: T
  }
}

/** Starts the workers (stopped when the scope closes) and returns the Gradients service over them. */
export const startDataParallel = (options: DataParallelOptions & { readonly backend: string }) =>
    Effect.gen(function*() {
      const count = Math.max(1, options.workers ?? availableParallelism())
      const backend = options.backend
      const workers = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: async () => {
            const handles = Array.from({ length: count }, () => new WorkerHandle({ backend }))
            try {
              await Promise.all(handles.map((h) => h.whenReady()))
            } catch (cause) {
              await Promise.all(handles.map((h) => h.worker.terminate()))
              throw cause
            }
            return handles
          },
          catch: (cause) =>
            new GradientsFailed({ message: `Starting ${count} gradient workers (${backend}) failed: ${messageOf(cause)}` })
        }),
        (handles) => Effect.promise(() => Promise.all(handles.map((h) => h.worker.terminate())))
      )
      const semaphore = yield* Semaphore.make(1)

      // Parameters as last shipped: buffer, version, and the data they came from (a data id is
      // never reused, and a variable's assign gives it a new one).
      let weights = new SharedArrayBuffer(0)
      let version = 0
      let shipped: ReadonlyArray<tf.DataId> = []
      let seq = 0

      const shipWeights = async (config: ModelConfig, params: Params, totalFloats: number) => {
        const tensors = paramTensors(config, params)
        const same = weights.byteLength === totalFloats * 4 && shipped.length === tensors.length &&
          tensors.every((t, i) => t.dataId === shipped[i])
        if (same) return
        if (weights.byteLength !== totalFloats * 4) weights = new SharedArrayBuffer(totalFloats * 4)
        const flat = new Float32Array(weights)
        let offset = 0
        for (const t of tensors) {
          await copyTensorInto(t, flat, offset)
          offset += t.size
        }
        shipped = tensors.map((t) => t.dataId)
        version++
      }

      const step = async (config: ModelConfig, params: Params, batch: TokenBatch) => {
        const layout = paramLayout(config)
        await shipWeights(config, params, layout.totalFloats)
        const shards = splitRows(batch.batchSize, workers.length).map((rows) => shardOf(batch, rows))
        const targets = shards.map(countedTargets)
        const total = Math.max(targets.reduce((a, b) => a + b, 0), 1)
        const replies = await Promise.all(shards.map((shard, i) => {
          const worker = workers[i]
          if (worker.grads.byteLength !== layout.totalFloats * 4) worker.grads = new SharedArrayBuffer(layout.totalFloats * 4)
          return worker.request({
            type: "compute",
            seq: ++seq,
            config,
            weights,
            weightsVersion: version,
            grads: worker.grads,
            ids: shard.ids,
            ...(shard.weights === undefined ? {} : { targetWeights: shard.weights }),
            batchSize: shard.batchSize,
            seqLen: shard.seqLen,
            scale: Math.max(targets[i], 1) / total
          })
        }))
        const loss = replies.reduce((sum, r, i) => sum + r.loss * Math.max(targets[i], 1) / total, 0)
        // Summed on this thread's engine (vectorised on wasm): each part is copied in once.
        const parts = replies.map((_, i) => new Float32Array(workers[i].grads))
        const grads = layout.entries.map((entry) =>
          tf.tidy(() => {
            const shape = entry.shape as Array<number>
            const view = (part: Float32Array) => part.subarray(entry.offset, entry.offset + entry.size)
            // A fresh copy: the cpu backend would otherwise keep a view of the shared buffer.
            let sum = tf.tensor(parts.length === 1 ? view(parts[0]).slice() : view(parts[0]), shape, "float32")
            for (let w = 1; w < parts.length; w++) sum = tf.add(sum, tf.tensor(view(parts[w]), shape, "float32"))
            return sum
          })
        )
        return { loss, targets: countedTargets(batch), grads }
      }

      return {
        description: `data-parallel: ${workers.length} workers (${workers[0].description})`,
        parallelism: workers.length,
        lossAndGradients: Effect.fn("Gradients.lossAndGradients")((config: ModelConfig, params: Params, batch: TokenBatch) =>
          semaphore.withPermits(1)(
            Effect.tryPromise({
              try: () => step(config, params, batch),
              catch: (cause) => new GradientsFailed({ message: `Data-parallel gradients failed: ${messageOf(cause)}` })
            }).pipe(
              // A request in flight cannot be recalled; let it finish so the shared buffers are
              // never written by a worker while the next call reads them.
              Effect.uninterruptible
            )
          )
        )
      } satisfies Gradients["Service"]
    })
