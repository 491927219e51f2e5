/**
 * The decoder graph of a model in memory: its weights read from its tfjs tensors (one copy each,
 * in internal orientation). Tests and in-process engines build sessions from this; `simmer
 * export` reads a checkpoint's tensors from disk instead (OnnxExport.ts).
 */
import type { Model } from "../model/Model.ts"
import { decoderGraph } from "./DecoderGraph.ts"
import type { GraphBuilder } from "./GraphBuilder.ts"

export const modelGraph = (model: Model): GraphBuilder =>
  decoderGraph(model.config, (spec) => spec.get(model.params).dataSync() as Float32Array)
