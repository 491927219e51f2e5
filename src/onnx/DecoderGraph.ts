/**
 * The ONNX graph of a Llama / Qwen2 decoder with a key/value cache, built from simmer's own
 * model description (ModelConfig: every layer's own MLP width and head counts, GQA, RoPE with
 * Llama 3 scaling, RMSNorm, SwiGLU, q/k/v, o_proj and MLP biases, tied or untied head), so a
 * pruned model with `layer_shapes` exports as faithfully as a uniform one.
 *
 * Inputs and outputs are named as Optimum names them (DecoderIo.ts). Weights are initializers
 * named by their Hugging Face tensor names, in simmer's internal orientation: Linear weights
 * [in, out] (the transpose of PyTorch's), so every projection is one MatMul; `weightValues`
 * says where a weight's values come from when the file is written.
 *
 * The head is the LM head (logits), the LM head reduced to each position's −log p of a given
 * `targets` token (perplexity without the [B, T, V] logits leaving the session), or a reward
 * model's score head (`score.weight` [D, 1]:
 * `XxxForSequenceClassification` with one label) giving the score at every position, which
 * the caller reads at the position it pools, or none (statistics only). With `mlpStatistics`
 * the graph also takes a `token_mask` [B, T] (1 for tokens that count) and gives, per layer,
 * the sums over those tokens of |a| and a² of the MLP activation a = silu(gate(x)) · up(x)
 * (what the activation and wanda scorers reduce it to), so a calibration pass returns [I]
 * floats per layer instead of the activations.
 */
import type { ModelConfig } from "../model/ModelConfig.ts"
import { paramSpecs } from "../model/Params.ts"
import { inverseFrequencies } from "../model/Rope.ts"
import { attentionMask, type CacheLayout, project, type ProjectionNames, rotaryTables, selfAttention } from "./AttentionGraph.ts"
import { decoderDims, decoderInputs, decoderOutputs } from "./DecoderIo.ts"
import { GraphBuilder } from "./GraphBuilder.ts"

/** RMSNorm x / √(mean(x²) + eps) · w, in the node pattern ONNX Runtime fuses into one kernel. */
const rmsNorm = (g: GraphBuilder, x: string, weight: string, eps: number): string => {
  const meanSquare = g.node("ReduceMean", [g.node("Pow", [x, g.float(2)])], { axes: [-1], keepdims: 1 })
  const rms = g.node("Sqrt", [g.node("Add", [meanSquare, g.float(eps)])])
  return g.node("Mul", [weight, g.node("Div", [x, rms])])
}

/** down(silu(gate(x)) · up(x)); `observe` sees the activation [B, T, I]. */
const swiGlu = (
  g: GraphBuilder,
  x: string,
  gate: ProjectionNames,
  up: ProjectionNames,
  down: ProjectionNames,
  observe?: (act: string) => void
): string => {
  const gated = project(g, x, gate)
  const act = g.node("Mul", [g.node("Mul", [gated, g.node("Sigmoid", [gated])]), project(g, x, up)])
  observe?.(act)
  return project(g, act, down)
}

/** What the decoder's final hidden states feed. */
export type DecoderHead = "lm" | "nll" | "score" | "none"

export interface DecoderGraphOptions {
  /** Default the LM head. */
  readonly head?: DecoderHead
  /**
   * The LM head's positions: all (the default, and what exports give), or only the last, which
   * is all that decoding left-padded prompts reads: a prompt pass of 64 × 93 tokens over a
   * 151,936-token vocabulary otherwise computes and returns 3.6 GB of logits.
   */
  readonly logits?: "all" | "last"
  readonly mlpStatistics?: boolean
  /**
   * `standard` (the default): standard ONNX ops only, which every runtime reads (what exports
   * write). `onnxruntime`: ONNX Runtime's fused contrib kernels where they save nodes (the
   * rotary embedding), for the sessions simmer opens itself.
   */
  readonly kernels?: "standard" | "onnxruntime"
  /** The key/value cache's layout (AttentionGraph.ts); default `optimum`, what exports give. */
  readonly cache?: CacheLayout
}

/** What the sessions simmer opens itself use (only ONNX Runtime reads their graphs); exports keep the defaults. */
export const sessionGraphOptions: DecoderGraphOptions = { kernels: "onnxruntime", cache: "appended" }

/** The weight name of a reward model's score head, [D, 1] in internal orientation. */
export const scoreWeightName = "score.weight"

/** The graph of the decoder with its head; its weights are the tensors of `paramSpecs(config)` (the LM head's only with it), and `score.weight` with a score head. */
export const decoderGraph = (config: ModelConfig, options: DecoderGraphOptions = {}): GraphBuilder => {
  const head = options.head ?? "lm"
  const g = new GraphBuilder()
  const { batch, sequence, past, total } = decoderDims
  const hd = config.headDim
  const inputIds = g.input(decoderInputs.inputIds, "int64", [batch, sequence])
  const mask = g.input(decoderInputs.attentionMask, "int64", [batch, total])
  const positionIds = g.input(decoderInputs.positionIds, "int64", [batch, sequence])
  const cache = options.cache ?? "optimum"
  const cacheDims = (KV: number, positions: string) => cache === "optimum" ? [batch, KV, positions, hd] : [positions, batch, KV, hd]
  config.layers.forEach((layer, i) => {
    g.input(decoderInputs.pastKey(i), "float32", cacheDims(layer.numKeyValueHeads, past))
    g.input(decoderInputs.pastValue(i), "float32", cacheDims(layer.numKeyValueHeads, past))
  })
  const tokenMask = options.mlpStatistics === true
    ? g.node("Unsqueeze", [g.input(decoderInputs.tokenMask, "float32", [batch, sequence]), g.ints([2])]) // [B, T, 1]
    : undefined
  const mlpStatistics = (i: number) => (act: string) => {
    if (tokenMask === undefined) return
    const counted = g.node("Mul", [act, tokenMask])
    const sum = (x: string, name: string) => {
      g.node("ReduceSum", [x, g.ints([0, 1])], { keepdims: 0 }, name)
      g.output(name, "float32", [config.layers[i].intermediateSize])
    }
    sum(g.node("Abs", [counted]), decoderOutputs.mlpAbsSum(i))
    sum(g.node("Mul", [counted, counted]), decoderOutputs.mlpSquareSum(i))
  }

  const specs = new Map(paramSpecs(config).map((spec) => [spec.name, spec]))
  const weight = (name: string): string => {
    const spec = specs.get(name)
    if (spec === undefined) throw new Error(`decoderGraph: no parameter ${name} in this config`)
    const dims = spec.transposed ? [spec.shape[1], spec.shape[0]] : [...spec.shape]
    return g.weight(name, dims)
  }
  const projection = (prefix: string): ProjectionNames => ({
    w: weight(`${prefix}.weight`),
    b: specs.has(`${prefix}.bias`) ? weight(`${prefix}.bias`) : undefined
  })

  const bias = attentionMask(g, inputIds, mask)
  const groupMasks = new Map<number, string>()
  const groupMask = (repeats: number) => {
    let tiled = groupMasks.get(repeats)
    if (tiled === undefined) {
      // Rows ordered (r, t), as the grouped queries: the [T, S] mask repeated R times.
      tiled = g.node("Tile", [bias, g.ints([1, 1, repeats, 1])])
      groupMasks.set(repeats, tiled)
    }
    return tiled
  }
  const rope = rotaryTables(
    g,
    positionIds,
    inverseFrequencies(hd, config.ropeTheta, config.ropeScaling),
    options.kernels === "onnxruntime" ? "fused" : "tables"
  )
  const embed = weight("model.embed_tokens.weight")
  let h = g.node("Gather", [embed, inputIds], { axis: 0 }) // [B, T, D]

  config.layers.forEach((layer, i) => {
    const at = `model.layers.${i}`
    const normed = rmsNorm(g, h, weight(`${at}.input_layernorm.weight`), config.rmsNormEps)
    const attended = selfAttention(g, {
      numHeads: layer.numHeads,
      numKeyValueHeads: layer.numKeyValueHeads,
      headDim: hd,
      q: projection(`${at}.self_attn.q_proj`),
      k: projection(`${at}.self_attn.k_proj`),
      v: projection(`${at}.self_attn.v_proj`),
      o: projection(`${at}.self_attn.o_proj`),
      pastKey: decoderInputs.pastKey(i),
      pastValue: decoderInputs.pastValue(i),
      presentKey: cache === "optimum" ? decoderOutputs.presentKey(i) : decoderOutputs.newKey(i),
      presentValue: cache === "optimum" ? decoderOutputs.presentValue(i) : decoderOutputs.newValue(i),
      cache
    }, normed, rope, bias, groupMask)
    h = g.node("Add", [h, attended])
    const mlpIn = rmsNorm(g, h, weight(`${at}.post_attention_layernorm.weight`), config.rmsNormEps)
    h = g.node("Add", [
      h,
      swiGlu(g, mlpIn, projection(`${at}.mlp.gate_proj`), projection(`${at}.mlp.up_proj`), projection(`${at}.mlp.down_proj`), mlpStatistics(i))
    ])
  })

  // Without a head the statistics are the outputs (the cache's present outputs besides).
  const final = () => rmsNorm(g, h, weight("model.norm.weight"), config.rmsNormEps)
  if (head === "score") {
    const scores = g.node("MatMul", [final(), g.weight(scoreWeightName, [config.hiddenSize, 1])]) // [B, T, 1]
    g.node("Squeeze", [scores, g.ints([2])], {}, decoderOutputs.scores)
    g.output(decoderOutputs.scores, "float32", [batch, sequence])
  } else if (head === "lm" || head === "nll") {
    const logitsName = head === "lm" ? decoderOutputs.logits : undefined
    const lastOnly = head === "lm" && options.logits === "last"
    // [B, T, D], or [B, 1, D] at the last position.
    const states = lastOnly ? g.node("Slice", [final(), g.ints([-1]), g.ints([2 ** 31 - 1]), g.ints([1])]) : final()
    let logits: string
    if (config.tieWordEmbeddings) {
      // The embedding [V, D] read transposed by Gemm, so a tied head stores (and loads) it once.
      const rows = g.node("Reshape", [states, g.ints([-1, config.hiddenSize])])
      const logits2d = g.node("Gemm", [rows, embed], { transB: 1 })
      const shape = g.node("Concat", [g.node("Shape", [states], { end: 2 }), g.ints([config.vocabSize])], { axis: 0 })
      logits = g.node("Reshape", [logits2d, shape], {}, logitsName)
    } else {
      logits = g.node("MatMul", [states, weight("lm_head.weight")], {}, logitsName)
    }
    if (head === "lm") {
      g.output(decoderOutputs.logits, "float32", [batch, lastOnly ? 1 : sequence, config.vocabSize])
    } else {
      // −log p(target) at every position: only [B, T] floats leave the session, not [B, T, V] logits.
      const targets = g.input(decoderInputs.targets, "int64", [batch, sequence])
      const logProbs = g.node("LogSoftmax", [logits], { axis: -1 })
      const picked = g.node("GatherElements", [logProbs, g.node("Unsqueeze", [targets, g.ints([2])])], { axis: 2 })
      g.node("Neg", [g.node("Squeeze", [picked, g.ints([2])])], {}, decoderOutputs.targetNll)
      g.output(decoderOutputs.targetNll, "float32", [batch, sequence])
    }
  }
  config.layers.forEach((layer, i) => {
    if (cache === "optimum") {
      g.output(decoderOutputs.presentKey(i), "float32", cacheDims(layer.numKeyValueHeads, total))
      g.output(decoderOutputs.presentValue(i), "float32", cacheDims(layer.numKeyValueHeads, total))
    } else {
      g.output(decoderOutputs.newKey(i), "float32", cacheDims(layer.numKeyValueHeads, sequence))
      g.output(decoderOutputs.newValue(i), "float32", cacheDims(layer.numKeyValueHeads, sequence))
    }
  })
  return g
}
