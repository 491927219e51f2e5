/**
 * An ONNX model file from a built graph: the ModelProto encoded by protobufjs, with the weights
 * either inside it or in one external-data file beside it.
 *
 * The rule: a protobuf message cannot exceed 2 GiB, so weights go inline while they total less
 * than `inlineWeightLimit` (2 GiB less 64 MiB of room for the graph and the encoding), and
 * otherwise every weight goes to `model.onnx_data` (the name Optimum and `onnx.save` use), each
 * at an offset aligned to 4096 bytes so runtimes can map it. Inline files are what
 * transformers.js loads by default; external data is what every runtime reads beyond 2 GiB.
 * External data is written one weight at a time as it is read, so exporting a large model holds
 * one tensor, not the model.
 */
import { open, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { Effect } from "effect"
import type onnxProto from "onnx-proto"
import { fsError } from "../io/Errors.ts"
import { weightBytes } from "../model/Footprint.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { paramSpecs } from "../model/Params.ts"
import { contribDomain, contribVersion, GraphBuilder, irVersion, onnx, opsetVersion, type Weight, weightSize } from "./GraphBuilder.ts"

export const modelFileName = "model.onnx"
export const externalDataFileName = "model.onnx_data"

export const inlineWeightLimit = 2 ** 31 - 64 * 2 ** 20

const alignment = 4096

/** How weights are stored: by the size rule, or always in the external file (tests, or by request). */
export type ExternalData = "auto" | "always"

/** True when the weights must go to an external file under the rule above. */
export const needsExternalData = (weights: ReadonlyArray<Weight>): boolean =>
  weights.reduce((sum, w) => sum + 4 * weightSize(w), 0) >= inlineWeightLimit

/**
 * Host memory an export of a model of `config` holds at its peak: inline, its float32 values and
 * the encoded file at once (a 239 MiB model measured 2.2×: protobufjs's buffers on top); as
 * external data, a tensor or two read and written at a time (the same model, forced external,
 * peaked 107 MiB above its start: 4.6× its largest tensor, with garbage not yet collected).
 */
export const onnxExportBytes = (config: ModelConfig): number =>
  weightBytes(config) < inlineWeightLimit
    ? 2.25 * weightBytes(config)
    : 5 * 4 * Math.max(...paramSpecs(config).map((spec) => spec.shape.reduce((a, b) => a * b, 1)))

const bytesOf = (weight: Weight, data: Float32Array): Uint8Array => {
  if (data.length !== weightSize(weight)) {
    throw new Error(`ONNX weight ${weight.name}: ${data.length} values for shape [${weight.dims.join(", ")}]`)
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
}

const tensorBase = (weight: Weight) => ({ name: weight.name, dims: [...weight.dims], dataType: onnx.TensorProto.DataType.FLOAT })

const encode = (g: GraphBuilder, initializers: Array<onnxProto.onnx.ITensorProto>, docString: string): Uint8Array =>
  onnx.ModelProto.encode({
    irVersion,
    opsetImport: [
      { domain: "", version: opsetVersion },
      ...(g.usesContrib ? [{ domain: contribDomain, version: contribVersion }] : [])
    ],
    producerName: "simmer",
    docString,
    graph: { name: "decoder", node: g.nodes, input: g.inputs, output: g.outputs, initializer: [...g.constants, ...initializers] }
  }).finish()

/** model.onnx with every weight inside, for a model under the limit (sessions in memory, small exports). */
export const encodeInline = (g: GraphBuilder, data: (name: string) => Float32Array, docString = ""): Uint8Array => {
  if (needsExternalData(g.weights)) throw new Error("encodeInline: the weights exceed the protobuf limit; write them as external data")
  return encode(g, g.weights.map((w) => ({ ...tensorBase(w), rawData: bytesOf(w, data(w.name)) })), docString)
}

export interface WrittenModel {
  readonly modelBytes: number
  /** Bytes of model.onnx_data, when the weights went there. */
  readonly externalBytes?: number
}

/**
 * Writes model.onnx into `dir`, and model.onnx_data when the weights go there (by the rule, or
 * always when asked), reading each weight with `read` as it is written.
 */
export const writeModelFiles = <E>(
  dir: string,
  g: GraphBuilder,
  read: (name: string) => Effect.Effect<Float32Array, E>,
  options: { readonly externalData?: ExternalData; readonly docString?: string } = {}
) =>
  Effect.gen(function*() {
    const modelPath = join(dir, modelFileName)
    const writeModel = (bytes: Uint8Array) =>
      Effect.tryPromise({ try: () => writeFile(modelPath, bytes), catch: fsError(modelPath, "write") })
    if (options.externalData !== "always" && !needsExternalData(g.weights)) {
      const values = new Map<string, Float32Array>()
      for (const w of g.weights) values.set(w.name, yield* read(w.name))
      const model = encodeInline(g, (name) => values.get(name)!, options.docString)
      yield* writeModel(model)
      return { modelBytes: model.byteLength } satisfies WrittenModel
    }
    const dataPath = join(dir, externalDataFileName)
    const file = yield* Effect.acquireRelease(
      Effect.tryPromise({ try: () => open(dataPath, "w"), catch: fsError(dataPath, "create") }),
      (f) => Effect.promise(() => f.close())
    )
    let offset = 0
    const initializers: Array<onnxProto.onnx.ITensorProto> = []
    for (const w of g.weights) {
      const bytes = bytesOf(w, yield* read(w.name))
      const start = Math.ceil(offset / alignment) * alignment
      yield* Effect.tryPromise({ try: () => file.write(bytes, 0, bytes.byteLength, start), catch: fsError(dataPath, "write") })
      initializers.push({
        ...tensorBase(w),
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [
          { key: "location", value: externalDataFileName },
          { key: "offset", value: String(start) },
          { key: "length", value: String(bytes.byteLength) }
        ]
      })
      offset = start + bytes.byteLength
    }
    const model = encode(g, initializers, options.docString ?? "")
    yield* writeModel(model)
    return { modelBytes: model.byteLength, externalBytes: offset } satisfies WrittenModel
  }).pipe(Effect.scoped)
