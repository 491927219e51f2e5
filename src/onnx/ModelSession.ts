/**
 * An ONNX Runtime session on a model in memory (a run's candidate, whose weights are tfjs
 * tensors): each weight read once from its tensor, asynchronously (`await tensor.data()`, so a
 * GPU backend's download does not block), and copied into the session (GraphSession.ts). The
 * session does not follow later changes to the tensors: open one where the weights stand still
 * (an evaluation, a tuning's teacher, a step's rollouts, a scoring). It lives until the scope
 * closes.
 */
import { Effect } from "effect"
import type { Model } from "../model/Model.ts"
import { paramSpecs } from "../model/Params.ts"
import { readFloats } from "../model/Read.ts"
import type { DecoderGraphOptions } from "./DecoderGraph.ts"
import { openGraphSession } from "./GraphSession.ts"

/** Reads a weight of `model` by its graph name from its tensor. */
export const modelWeights = (model: Model) => {
  const specs = new Map(paramSpecs(model.config).map((spec) => [spec.name, spec]))
  return (name: string): Effect.Effect<Float32Array> => {
    const spec = specs.get(name)
    if (spec === undefined) return Effect.die(new Error(`openModelSession: no parameter ${name} in this config`))
    return readFloats(spec.get(model.params))
  }
}

export const openModelSession = (model: Model, options: DecoderGraphOptions = {}) => openGraphSession(model.config, modelWeights(model), options)
