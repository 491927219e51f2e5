/**
 * Batched greedy decoding as graded evaluation uses it, independent of the engine that runs
 * the model: tfjs (model/Generate.ts, the default) or ONNX Runtime (onnx/OrtGenerate.ts).
 * Both left-pad the prompts, keep a key/value cache and pick the first largest logit.
 */
import { Effect } from "effect"
import { generate } from "../model/Generate.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import type { Params } from "../model/Params.ts"
import { greedy } from "../model/Sampling.ts"

export interface GreedyOptions {
  readonly maxNewTokens: number
  /** A sequence stops after emitting one of these (the token is kept in its output). */
  readonly stopTokens: ReadonlyArray<number>
}

export interface GreedyDecoder {
  /** True when it decodes on the tfjs device, whose memory bounds the batch (Accuracy.ts lowers it to fit). */
  readonly onDevice: boolean
  /** New tokens for each prompt. */
  readonly decode: (prompts: ReadonlyArray<ReadonlyArray<number>>, options: GreedyOptions) => Effect.Effect<Array<Array<number>>>
}

/** Greedy decoding with simmer's tfjs transformer on the current backend. */
export const tfjsGreedyDecoder = (config: ModelConfig, params: Params): GreedyDecoder => ({
  onDevice: true,
  decode: (prompts, options) => generate(config, params, prompts, { ...greedy, ...options })
})
