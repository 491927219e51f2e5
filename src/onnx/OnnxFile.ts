/**
 * An ONNX model file from a built graph: the ModelProto encoded by protobufjs, with the weights
 * either inside it or in one external-data file beside it.
 *
 * The rule: a protobuf message cannot exceed 2 GiB, so weights go inline while they total less
 * than `inlineWeightLimit` (2 GiB less 64 MiB of room for the graph and the encoding), and
 * otherwise every weight goes to `model.onnx_data` (the name Optimum and `onnx.save` use), each
 * at an offset aligned to 4096 bytes so runtimes can map it. Inline files are what
 * transformers.js loads by default; external data is what every runtime reads beyond 2 GiB.
 */
import type onnxProto from "onnx-proto"
import { GraphBuilder, irVersion, onnx, opsetVersion, type Weight } from "./GraphBuilder.ts"

export const modelFileName = "model.onnx"
export const externalDataFileName = "model.onnx_data"

export const inlineWeightLimit = 2 ** 31 - 64 * 2 ** 20

const alignment = 4096

/** How weights are stored: by the size rule, or always in the external file (tests, or by request). */
export type ExternalData = "auto" | "always"

export interface EncodedModel {
  /** model.onnx */
  readonly model: Uint8Array
  /** The external-data file's pieces in order (zero padding included), when weights are external. */
  readonly externalData?: ReadonlyArray<Uint8Array>
}

const weightBytes = (weight: Weight): Uint8Array =>
  new Uint8Array(weight.data.buffer, weight.data.byteOffset, weight.data.byteLength)

/** True when the weights must go to an external file under the rule above. */
export const needsExternalData = (weights: ReadonlyArray<Weight>): boolean =>
  weights.reduce((sum, w) => sum + w.data.byteLength, 0) >= inlineWeightLimit

export const encodeModel = (
  g: GraphBuilder,
  options: { readonly externalData?: ExternalData; readonly docString?: string } = {}
): EncodedModel => {
  const external = options.externalData === "always" || needsExternalData(g.weights)
  const pieces: Array<Uint8Array> = []
  let offset = 0
  const initializers = g.weights.map((weight): onnxProto.onnx.ITensorProto => {
    const base = { name: weight.name, dims: [...weight.dims], dataType: onnx.TensorProto.DataType.FLOAT }
    if (!external) return { ...base, rawData: weightBytes(weight) }
    const padding = (alignment - (offset % alignment)) % alignment
    if (padding > 0) pieces.push(new Uint8Array(padding))
    offset += padding
    const bytes = weightBytes(weight)
    pieces.push(bytes)
    const entry = {
      ...base,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [
        { key: "location", value: externalDataFileName },
        { key: "offset", value: String(offset) },
        { key: "length", value: String(bytes.byteLength) }
      ]
    }
    offset += bytes.byteLength
    return entry
  })
  const model = onnx.ModelProto.encode({
    irVersion,
    opsetImport: [{ domain: "", version: opsetVersion }],
    producerName: "simmer",
    docString: options.docString ?? "",
    graph: {
      name: "decoder",
      node: g.nodes,
      input: g.inputs,
      output: g.outputs,
      initializer: [...g.constants, ...initializers]
    }
  }).finish()
  return external ? { model, externalData: pieces } : { model }
}
