/**
 * A model in memory: its shape and its weights. Loading, pruning, tuning and evaluation all
 * pass this one type around; who owns (and releases) its tensors is the caller's business
 * (the loop holds each model in a scope of its own, see pipeline/Models.ts).
 */
import type { ModelConfig } from "./ModelConfig.ts"
import { disposeParams, type Params } from "./Params.ts"

export interface Model {
  readonly config: ModelConfig
  readonly params: Params
}

/** Releases every tensor of the model (idempotent: disposing a disposed tensor does nothing). */
export const disposeModel = (model: Model): void => disposeParams(model.config, model.params)
