/**
 * Gradients: loss and gradients of the next-token loss for one batch of tokens at given
 * parameters — the unit of work of every trainer. Its layers compute it in the calling thread
 * (`layerLocal`) or split the batch by rows over worker threads, each with its own tfjs engine
 * (`layerDataParallel`, see compute/DataParallel.ts), and combine the shards weighted by counted
 * targets, so the result equals the single-thread gradient up to float summation order.
 */
import { Context, Effect, Layer } from "effect"
import { type DataParallelOptions, startDataParallel } from "../compute/DataParallel.ts"
import { GradientsFailed, type LossAndGradients, lossAndGradients, type TokenBatch } from "../model/Gradients.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import type { Params } from "../model/Params.ts"
import { Compute } from "./Compute.ts"

const messageOf = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

export class Gradients extends Context.Service<Gradients, {
  /** "local (wasm)" or "data-parallel: 2 workers (wasm)". */
  readonly description: string
  /** Threads computing in parallel (1 for local). */
  readonly parallelism: number
  /**
   * Mean loss over the counted targets of `batch`, their number, and one gradient per
   * parameter in paramSpecs order (tensors on the caller's engine; the caller disposes them).
   * `params` are read, never disposed.
   */
  readonly lossAndGradients: (
    config: ModelConfig,
    params: Params,
    batch: TokenBatch
  ) => Effect.Effect<LossAndGradients, GradientsFailed>
}>()("simmer/Gradients") {
  /** Loss and gradients in the calling thread, on its tfjs engine. */
  static readonly layerLocal: Layer.Layer<Gradients, never, Compute> = Layer.effect(
    Gradients,
    Effect.gen(function*() {
      const compute = yield* Compute
      return Gradients.of({
        description: `local (${compute.backend})`,
        parallelism: 1,
        lossAndGradients: Effect.fn("Gradients.lossAndGradients")((config: ModelConfig, params: Params, batch: TokenBatch) =>
          // A throw while building the graph is a defect of the suspended effect: the same failure as before.
          Effect.suspend(() => lossAndGradients(config, params, batch)).pipe(
            Effect.catchDefect((cause) =>
              Effect.fail(new GradientsFailed({ message: `Computing gradients failed: ${messageOf(cause)}` }))
            )
          )
        )
      })
    })
  )

  /** Each batch split over worker threads, on the backend of Compute unless `options` names one. */
  static readonly layerDataParallel = (options: DataParallelOptions = {}): Layer.Layer<Gradients, GradientsFailed, Compute> =>
    Layer.effect(
      Gradients,
      Effect.gen(function*() {
        const compute = yield* Compute
        return yield* startDataParallel({ ...options, backend: options.backend ?? compute.backend })
      })
    )

  /**
   * One thread computes in place; more spread each batch over that many worker threads. On
   * webgpu the batch stays whole in this thread: there is one GPU, and worker threads would each
   * open a device on it and queue their kernels behind one another.
   */
  static readonly layerFor = (workers: number): Layer.Layer<Gradients, GradientsFailed, Compute> =>
    Layer.unwrap(Effect.map(Effect.service(Compute), (compute) =>
      workers > 1 && compute.backend !== "webgpu" ? Gradients.layerDataParallel({ workers }) : Gradients.layerLocal))
}
