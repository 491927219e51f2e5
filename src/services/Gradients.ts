/**
 * Gradients: loss and gradients of the next-token loss for one batch of tokens at given
 * parameters — the unit of work of every trainer. Implementations (layers/Gradients.ts) compute
 * it in the calling thread or split the batch by rows over worker threads, each with its own
 * tfjs engine, and combine the shards weighted by counted targets, so the result equals the
 * single-thread gradient up to float summation order.
 */
import { Context, type Effect, Schema } from "effect"
import type { LossAndGradients, TokenBatch } from "../model/Gradients.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import type { Params } from "../model/Params.ts"

export class GradientsFailed extends Schema.TaggedError<GradientsFailed>()("GradientsFailed", {
  message: Schema.String
}) {}

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
}>()("simmer/Gradients") {}
