/**
 * A small builder of ONNX graphs on top of the `onnx-proto` message classes (protobufjs):
 * nodes get unique output names, constants become initializers, and weights are declared by
 * name and shape only: their values are read when the file is written (OnnxFile.ts), one at a
 * time where they go to external data, so a model never has to be in memory twice. Graphs keep
 * to the standard domain at one opset, so every ONNX runtime (ONNX Runtime in Python, C#, Java,
 * the web, transformers.js) reads them, unless they ask for ONNX Runtime's own fused kernels
 * (`contrib`, the `com.microsoft` domain), as the sessions simmer opens in its own process do.
 */
import onnxProto from "onnx-proto"

export const onnx = onnxProto.onnx

/** The opset the decoder is written against: LessOrEqual, Split with a sizes input, Softmax on one axis. */
export const opsetVersion = 17

/** The domain of ONNX Runtime's contrib operators, and the version of it the graph imports. */
export const contribDomain = "com.microsoft"
export const contribVersion = 1

/** IR version 8 (ONNX 1.12), the newest `onnx-proto` describes and the one opset 17 came with. */
export const irVersion = 8

/** A graph input or output dimension: a fixed size or a symbolic name (`batch_size`). */
export type Dim = number | string

export type ElementType = "float32" | "int64" | "bool"

const elementTypes: Record<ElementType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
  bool: onnx.TensorProto.DataType.BOOL
}

/** A float32 weight the graph reads, by name and shape; its values come when the file is written. */
export interface Weight {
  readonly name: string
  readonly dims: ReadonlyArray<number>
}

/** Elements of a weight. */
export const weightSize = (weight: Weight): number => weight.dims.reduce((a, b) => a * b, 1)

type Attribute = number | ReadonlyArray<number> | { readonly float: number }

const attribute = (name: string, value: Attribute): onnxProto.onnx.IAttributeProto => {
  const { AttributeType } = onnx.AttributeProto
  if (typeof value === "number") return { name, type: AttributeType.INT, i: value }
  if ("float" in value) return { name, type: AttributeType.FLOAT, f: value.float }
  return { name, type: AttributeType.INTS, ints: [...(value as ReadonlyArray<number>)] }
}

const valueInfo = (name: string, type: ElementType, dims: ReadonlyArray<Dim>): onnxProto.onnx.IValueInfoProto => ({
  name,
  type: {
    tensorType: {
      elemType: elementTypes[type],
      shape: { dim: dims.map((d) => (typeof d === "number" ? { dimValue: d } : { dimParam: d })) }
    }
  }
})

export class GraphBuilder {
  readonly nodes: Array<onnxProto.onnx.INodeProto> = []
  readonly inputs: Array<onnxProto.onnx.IValueInfoProto> = []
  readonly outputs: Array<onnxProto.onnx.IValueInfoProto> = []
  /** Small int64 / float constants (shapes, axes, scalars), always inline. */
  readonly constants: Array<onnxProto.onnx.ITensorProto> = []
  readonly weights: Array<Weight> = []
  private readonly used = new Set<string>()
  private readonly constantNames = new Map<string, string>()

  /** A fresh value name starting with `hint`. */
  name(hint: string): string {
    let name = hint
    for (let i = 1; this.used.has(name); i++) name = `${hint}_${i}`
    this.used.add(name)
    return name
  }

  input(name: string, type: ElementType, dims: ReadonlyArray<Dim>): string {
    this.used.add(name)
    this.inputs.push(valueInfo(name, type, dims))
    return name
  }

  output(name: string, type: ElementType, dims: ReadonlyArray<Dim>): void {
    this.outputs.push(valueInfo(name, type, dims))
  }

  /**
   * Adds one node and returns its outputs' names: `outputs` gives exact names (graph outputs
   * such as `present.0.key`) or a count of fresh ones named after the op.
   */
  nodeN(
    op: string,
    inputs: ReadonlyArray<string>,
    attributes: Record<string, Attribute> = {},
    outputs: number | ReadonlyArray<string> = 1,
    domain?: string
  ): Array<string> {
    const names = typeof outputs === "number"
      ? Array.from({ length: outputs }, () => this.name(op.toLowerCase()))
      : outputs.map((name) => {
        this.used.add(name)
        return name
      })
    this.nodes.push({
      opType: op,
      name: this.name(`node_${op.toLowerCase()}`),
      input: [...inputs],
      output: names,
      attribute: Object.entries(attributes).map(([key, value]) => attribute(key, value)),
      ...(domain === undefined ? {} : { domain })
    })
    return names
  }

  /** A node of one of ONNX Runtime's contrib operators, with one output. */
  contrib(op: string, inputs: ReadonlyArray<string>, attributes: Record<string, Attribute> = {}): string {
    return this.nodeN(op, inputs, attributes, 1, contribDomain)[0]
  }

  /** Whether any node is a contrib operator (the model then imports their domain). */
  get usesContrib(): boolean {
    return this.nodes.some((n) => n.domain === contribDomain)
  }

  /** A node with one output. */
  node(op: string, inputs: ReadonlyArray<string>, attributes: Record<string, Attribute> = {}, output?: string): string {
    return this.nodeN(op, inputs, attributes, output === undefined ? 1 : [output])[0]
  }

  /** An int64 constant (1-D, or a scalar when `scalar`), shared by every node that asks for the same values. */
  ints(values: ReadonlyArray<number>, scalar = false): string {
    return this.constant(`i64:${scalar}:${values.join(",")}`, "const_i64", {
      dataType: onnx.TensorProto.DataType.INT64,
      dims: scalar ? [] : [values.length],
      int64Data: [...values]
    })
  }

  /** A float32 scalar constant. */
  float(value: number): string {
    return this.constant(`f32:${value}`, "const_f32", { dataType: onnx.TensorProto.DataType.FLOAT, dims: [], floatData: [value] })
  }

  /** A float32 1-D constant of derived values (rotary frequencies), inline in the graph. */
  floats(hint: string, values: ReadonlyArray<number>): string {
    return this.constant(`f32s:${values.join(",")}`, hint, { dataType: onnx.TensorProto.DataType.FLOAT, dims: [values.length], floatData: [...values] })
  }

  /** A weight by its name and shape. */
  weight(name: string, dims: ReadonlyArray<number>): string {
    this.used.add(name)
    this.weights.push({ name, dims })
    return name
  }

  private constant(key: string, hint: string, tensor: onnxProto.onnx.ITensorProto): string {
    const existing = this.constantNames.get(key)
    if (existing !== undefined) return existing
    const name = this.name(hint)
    this.constants.push({ ...tensor, name })
    this.constantNames.set(key, name)
    return name
  }
}
