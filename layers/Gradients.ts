/**
 * Live Gradients: in the calling thread (`GradientsLocal`), or data-parallel over worker
 * threads with their own engines (`GradientsDataParallel`, see src/compute/DataParallel.ts).
 */
import { Effect, Layer } from "effect"
import { type DataParallelOptions, startDataParallel } from "../src/compute/DataParallel.ts"
import { lossAndGradients, type TokenBatch } from "../src/model/Gradients.ts"
import type { ModelConfig } from "../src/model/ModelConfig.ts"
import type { Params } from "../src/model/Params.ts"
import { Compute } from "../src/services/Compute.ts"
import { Gradients, GradientsFailed } from "../src/services/Gradients.ts"

const messageOf = (cause: unknown): string => (cause instanceof Error ? cause.message : String(cause))

/** Loss and gradients in the calling thread, on its tfjs engine. */
export const GradientsLocal: Layer.Layer<Gradients, never, Compute> = Layer.effect(
  Gradients,
  Effect.gen(function*() {
    const compute = yield* Compute
    return Gradients.of({
      description: `local (${compute.backend})`,
      parallelism: 1,
      lossAndGradients: Effect.fn("Gradients.lossAndGradients")((config: ModelConfig, params: Params, batch: TokenBatch) =>
        Effect.try({
          try: () => lossAndGradients(config, params, batch),
          catch: (cause) => new GradientsFailed({ message: `Computing gradients failed: ${messageOf(cause)}` })
        })
      )
    })
  })
)

export const GradientsDataParallel = (
  options: DataParallelOptions = {}
): Layer.Layer<Gradients, GradientsFailed, Compute> =>
  Layer.effect(
    Gradients,
    Effect.gen(function*() {
      const compute = yield* Compute
      return yield* startDataParallel({ ...options, backend: options.backend ?? compute.backend })
    })
  )

/** One thread computes in place; more spread each batch over that many worker threads. */
export const GradientsFor = (workers: number): Layer.Layer<Gradients, GradientsFailed, Compute> =>
  workers > 1 ? GradientsDataParallel({ workers }) : GradientsLocal
