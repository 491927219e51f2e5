/**
 * Grouped-query self-attention with rotary embeddings and a key/value cache, as ONNX nodes, in
 * the arithmetic of transformers' eager Llama / Qwen2 attention (and of model/Attention.ts):
 * RoPE in the rotate-half convention on float32 angles position · inv_freq, scores
 * q·kᵀ · 1/√hd, an additive mask (causal and left padding), softmax, then the values.
 *
 * Shapes: B batch, T new tokens, P past positions, S = P + T, H query heads, KV key/value
 * heads, R = H / KV, hd head dim. The query heads of one key/value group are stacked
 * ([B, KV, R·T, hd]) so each group is one product with its keys, without repeating them.
 */
import type { GraphBuilder } from "./GraphBuilder.ts"

/** The lowest float32, transformers' mask value (`torch.finfo(float32).min`). */
const maskValue = -3.4028234663852886e38

/**
 * The additive mask [B, 1, T, S] for new tokens at slots P..S-1 (P = S − T): query t sees key
 * slot j when j ≤ P + t and attention_mask[b, j] is 1; 0 where it sees, the lowest float where not.
 */
export const attentionMask = (g: GraphBuilder, inputIds: string, attentionMask: string): string => {
  const T = g.node("Gather", [g.node("Shape", [inputIds]), g.ints([1], true)], { axis: 0 })
  const S = g.node("Gather", [g.node("Shape", [attentionMask]), g.ints([1], true)], { axis: 0 })
  const P = g.node("Sub", [S, T])
  const one = g.ints([1], true)
  const keySlots = g.node("Unsqueeze", [g.node("Range", [g.ints([0], true), S, one]), g.ints([0])]) // [1, S]
  const querySlots = g.node("Unsqueeze", [g.node("Range", [P, S, one]), g.ints([1])]) // [T, 1]
  const causal = g.node("LessOrEqual", [keySlots, querySlots]) // [T, S]
  const real = g.node("Unsqueeze", [g.node("Cast", [attentionMask], { to: 9 /* BOOL */ }), g.ints([1, 2])]) // [B, 1, 1, S]
  const sees = g.node("And", [causal, real]) // [B, 1, T, S]
  return g.node("Where", [sees, g.float(0), g.float(maskValue)], {}, "attention_bias")
}

/**
 * The rotary embedding's angles, as one of two node patterns:
 * - `tables`: standard ops only. cos and sin [B, 1, T, hd] of each position, applied as
 *   x·cos + rotate_half(x)·sin with rotate_half(x) = concat(−x₂, x₁): six nodes per use.
 * - `fused`: ONNX Runtime's contrib RotaryEmbedding kernel, one node per use, which gathers each
 *   position's row of cos and sin caches [positions, hd/2] (here rows 0 … the step's largest
 *   position). Decoding is mostly per-node overhead at small shapes: the reference shape of
 *   `bench infer` decoded 0.5–6.5% faster (median about 4%) with it, in alternating runs.
 * Both take cos and sin of the same float32 angles position · inv_freq.
 */
export type Rope =
  | { readonly kind: "tables"; readonly cos: string; readonly sin: string }
  | { readonly kind: "fused"; readonly positionIds: string; readonly cosCache: string; readonly sinCache: string }

/** The angles of position_ids [B, T] with inverse frequencies inv_freq [hd/2] (Rope.ts), for either pattern. */
export const rotaryTables = (
  g: GraphBuilder,
  positionIds: string,
  inverseFrequencies: ReadonlyArray<number>,
  kind: Rope["kind"]
): Rope => {
  const frequencies = g.floats("inv_freq", inverseFrequencies)
  if (kind === "fused") {
    const rows = g.node("Add", [g.node("ReduceMax", [positionIds], { keepdims: 0 }), g.ints([1], true)])
    const slots = g.node("Cast", [g.node("Range", [g.ints([0], true), rows, g.ints([1], true)])], { to: 1 /* FLOAT */ })
    const angles = g.node("Mul", [g.node("Unsqueeze", [slots, g.ints([1])]), frequencies]) // [rows, hd/2]
    return { kind, positionIds, cosCache: g.node("Cos", [angles], {}, "rope_cos"), sinCache: g.node("Sin", [angles], {}, "rope_sin") }
  }
  const positions = g.node("Unsqueeze", [g.node("Cast", [positionIds], { to: 1 /* FLOAT */ }), g.ints([2])]) // [B, T, 1]
  const angles = g.node("Mul", [positions, frequencies]) // [B, T, hd/2]
  const table = g.node("Unsqueeze", [g.node("Concat", [angles, angles], { axis: -1 }), g.ints([1])]) // [B, 1, T, hd]
  return { kind, cos: g.node("Cos", [table], {}, "rope_cos"), sin: g.node("Sin", [table], {}, "rope_sin") }
}

/** The rotary embedding of x [B, heads, T, hd]. */
const applyRope = (g: GraphBuilder, x: string, headDim: number, rope: Rope): string => {
  if (rope.kind === "fused") return g.contrib("RotaryEmbedding", [x, rope.positionIds, rope.cosCache, rope.sinCache])
  const [first, second] = g.nodeN("Split", [x, g.ints([headDim / 2, headDim / 2])], { axis: -1 }, 2)
  const rotated = g.node("Concat", [g.node("Neg", [second]), first], { axis: -1 })
  return g.node("Add", [g.node("Mul", [x, rope.cos]), g.node("Mul", [rotated, rope.sin])])
}

/** Projections of one layer: weight [in, out] names and optional bias names. */
export interface ProjectionNames {
  readonly w: string
  readonly b?: string | undefined
}

/** x @ w (+ b). */
export const project = (g: GraphBuilder, x: string, p: ProjectionNames): string => {
  const product = g.node("MatMul", [x, p.w])
  return p.b === undefined ? product : g.node("Add", [product, p.b])
}

export interface AttentionLayer {
  readonly numHeads: number
  readonly numKeyValueHeads: number
  readonly headDim: number
  readonly q: ProjectionNames
  readonly k: ProjectionNames
  readonly v: ProjectionNames
  readonly o: ProjectionNames
  /** The cache's inputs and outputs, laid out as `cache` says. */
  readonly pastKey: string
  readonly pastValue: string
  readonly presentKey: string
  readonly presentValue: string
  readonly cache: CacheLayout
}

/**
 * How a layer's key/value cache enters and leaves the graph:
 * - `optimum`: past [B, KV, P, hd] in, the whole present cache [B, KV, S, hd] out (what exports
 *   give, as Optimum names them).
 * - `appended`: past [P, B, KV, hd] in, positions first, and only the step's own keys and values
 *   [T, B, KV, hd] out, which the caller appends to its copy (KeyValueCache.ts). ONNX Runtime's
 *   Node binding copies every output it returns into a new buffer, so returning the whole cache
 *   at every step of a decoding costs more than the step itself; positions first, the caller's
 *   copy grows at its end and is fed without a copy.
 */
export type CacheLayout = "optimum" | "appended"

/**
 * Attention of normalised hidden states x [B, T, D] → [B, T, D] (after o_proj), writing the
 * extended cache to the layer's present outputs.
 */
export const selfAttention = (
  g: GraphBuilder,
  layer: AttentionLayer,
  x: string,
  rope: Rope,
  mask: string,
  groupMask: (repeats: number) => string
): string => {
  const { numHeads: H, numKeyValueHeads: KV, headDim: hd } = layer
  const heads = (projected: string, count: number) =>
    g.node("Transpose", [g.node("Reshape", [projected, g.ints([0, 0, count, hd])])], { perm: [0, 2, 1, 3] }) // [B, count, T, hd]
  const q = applyRope(g, heads(project(g, x, layer.q), H), hd, rope)
  const k = applyRope(g, heads(project(g, x, layer.k), KV), hd, rope)
  const v = heads(project(g, x, layer.v), KV)
  const [keys, values] = layer.cache === "optimum"
    ? [
      g.node("Concat", [layer.pastKey, k], { axis: 2 }, layer.presentKey), // [B, KV, S, hd]
      g.node("Concat", [layer.pastValue, v], { axis: 2 }, layer.presentValue)
    ]
    : [[layer.pastKey, k, layer.presentKey], [layer.pastValue, v, layer.presentValue]].map(([past, x, step]) => {
      const own = g.node("Transpose", [x], { perm: [2, 0, 1, 3] }, step) // [T, B, KV, hd]
      return g.node("Transpose", [g.node("Concat", [past, own], { axis: 0 })], { perm: [1, 2, 0, 3] }) // [B, KV, S, hd]
    })
  const grouped = g.node("Reshape", [q, g.ints([0, KV, -1, hd])]) // [B, KV, R·T, hd], rows (r, t)
  const scores = g.node("Mul", [
    g.node("MatMul", [grouped, g.node("Transpose", [keys], { perm: [0, 1, 3, 2] })]),
    g.float(Math.fround(1 / Math.sqrt(hd)))
  ]) // [B, KV, R·T, S]
  const probs = g.node("Softmax", [g.node("Add", [scores, H === KV ? mask : groupMask(H / KV)])], { axis: -1 })
  const context = g.node("Reshape", [g.node("MatMul", [probs, values]), g.ints([0, H, -1, hd])]) // [B, H, T, hd]
  const merged = g.node("Reshape", [g.node("Transpose", [context], { perm: [0, 2, 1, 3] }), g.ints([0, 0, H * hd])])
  return project(g, merged, layer.o)
}
