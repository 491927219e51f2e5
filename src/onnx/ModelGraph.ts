/**
 * The ONNX model of a model in memory, with its weights inside: each read from its tfjs tensor
 * (one copy, internal orientation; read asynchronously, in the graph's order). Tests and the benchmark open sessions on these bytes;
 * `simmer export` and `eval --inference ort` read a checkpoint's tensors from disk instead
 * (CheckpointSession.ts), and a run's evaluation reads them asynchronously (ModelSession.ts).
 */
import { Effect } from "effect"
import type { Model } from "../model/Model.ts"
import { paramSpecs } from "../model/Params.ts"
import { readFloats } from "../model/Read.ts"
import { decoderGraph, type DecoderGraphOptions, sessionGraphOptions } from "./DecoderGraph.ts"
import { encodeInline } from "./OnnxFile.ts"

/** The graph simmer's own sessions use (`sessionGraphOptions`) unless `options` ask for another. */
export const modelOnnx = (model: Model, options: DecoderGraphOptions = {}): Effect.Effect<Uint8Array> =>
  Effect.gen(function*() {
    const specs = new Map(paramSpecs(model.config).map((spec) => [spec.name, spec]))
    const graph = decoderGraph(model.config, { ...sessionGraphOptions, ...options })
    // Every weight read before encoding (encodeInline asks for them synchronously).
    const data = new Map<string, Float32Array>()
    for (const w of graph.weights) {
      if (!data.has(w.name)) data.set(w.name, yield* readFloats(specs.get(w.name)!.get(model.params)))
    }
    return encodeInline(graph, (name) => data.get(name)!)
  })
