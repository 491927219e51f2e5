/**
 * The ONNX model of a model in memory, with its weights inside: each read from its tfjs tensor
 * (one copy, internal orientation). Tests and the benchmark open sessions on these bytes;
 * `simmer export` and `eval --inference ort` read a checkpoint's tensors from disk instead
 * (CheckpointSession.ts), and a run's evaluation reads them asynchronously (ModelSession.ts).
 */
import type { Model } from "../model/Model.ts"
import { paramSpecs } from "../model/Params.ts"
import { decoderGraph } from "./DecoderGraph.ts"
import { encodeInline } from "./OnnxFile.ts"

export const modelOnnx = (model: Model): Uint8Array => {
  const specs = new Map(paramSpecs(model.config).map((spec) => [spec.name, spec]))
  return encodeInline(decoderGraph(model.config), (name) => specs.get(name)!.get(model.params).dataSync() as Float32Array)
}
