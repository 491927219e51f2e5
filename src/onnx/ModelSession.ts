/**
 * An ONNX Runtime session on a model in memory (a run's candidate, whose weights are tfjs
 * tensors): each weight read once from its tensor, asynchronously (`await tensor.data()`, so a
 * GPU backend's download does not block), and copied into the session (GraphSession.ts). The
 * session does not follow later changes to the tensors: open one per evaluation. It lives
 * until the scope closes.
 */
import { Effect } from "effect"
import type { Model } from "../model/Model.ts"
import { paramSpecs } from "../model/Params.ts"
import { openGraphSession } from "./GraphSession.ts"

export const openModelSession = (model: Model) => {
  const specs = new Map(paramSpecs(model.config).map((spec) => [spec.name, spec]))
  return openGraphSession(model.config, (name) => {
    const spec = specs.get(name)
    if (spec === undefined) return Effect.die(new Error(`openModelSession: no parameter ${name} in this config`))
    return Effect.promise(async () => {
      const data = await spec.get(model.params).data()
      if (!(data instanceof Float32Array)) throw new Error(`openModelSession: ${name} is not float32`)
      return data
    })
  })
}
