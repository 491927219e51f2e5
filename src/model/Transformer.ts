/**
 * The decoder-only transformer of Hugging Face's LlamaForCausalLM and Qwen2ForCausalLM:
 * token embedding → N × (RMSNorm → grouped-query attention with rotary embeddings → residual
 * → RMSNorm → SwiGLU MLP → residual) → RMSNorm → LM head.
 *
 * Hidden states stay 2-D ([B*T, D]) between blocks so every weight product is a plain 2-D
 * matMul; only attention reshapes into heads. Shapes: B batch, T new tokens, P cached
 * positions, D hidden, H query heads, KV key/value heads, R = H / KV, hd head dim, V vocab.
 */
import * as tf from "@tensorflow/tfjs"
import { attention } from "./Attention.ts"
import { linear } from "./Linear.ts"
import type { ModelConfig } from "./ModelConfig.ts"
import type { LayerParams, Params } from "./Params.ts"
import { ropeTables } from "./Rope.ts"
import { chunkedTargetLogProbs, headChunkRows } from "./VocabChunks.ts"

/**
 * Keys and values of the positions already seen, per layer: [B, KV, P, hd] (after RoPE), and
 * the number of left-padding slots of each sequence (batched prompts of unequal length).
 */
export interface KvCache {
  readonly length: number
  readonly padding: ReadonlyArray<number>
  readonly layers: ReadonlyArray<{ readonly k: tf.Tensor4D; readonly v: tf.Tensor4D }>
}

/**
 * Fused kernels a backend may register for the elementwise work of rmsNorm and swiGlu below
 * (compute/wasm/Fused.ts does on wasm); without them the same arithmetic runs as tfjs ops.
 */
export const FusedKernels = {
  /** {x, w}, {eps} → [y, n = x·r, r] */
  rmsNorm: "SimmerRmsNorm",
  /** {dy, n, r, w} → [dx, dw] */
  rmsNormGrad: "SimmerRmsNormGrad",
  /** {dy, s, a, up} → [d gate, d up] */
  swiGluGrad: "SimmerSwiGluGrad"
} as const

const fused = (kernel: string): boolean => tf.getKernel(kernel, tf.getBackend()) !== undefined

const runFused = (kernel: string, inputs: tf.NamedTensorMap, attrs: Record<string, number> = {}): Array<tf.Tensor> =>
  tf.engine().runKernel(kernel, inputs, attrs as unknown as tf.NamedAttrMap) as Array<tf.Tensor>

/**
 * RMSNorm y = x·r·w, r = 1/√(mean(x²) + eps), with a hand-written gradient: with g = dy·w and
 * n = x·r, dx = r·(g − n·mean(g·n)) and dw = Σ_rows dy·n — 8 ops where autodiff takes ~15
 * (and materialises a ones tensor of x's shape for the mean's gradient), or one fused kernel.
 */
export const rmsNorm = (x: tf.Tensor2D, weight: tf.Tensor1D, eps: number): tf.Tensor2D =>
  tf.customGrad((input: tf.Tensor | tf.GradSaveFunc, w: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
    const [value, n, r] = fused(FusedKernels.rmsNorm)
      ? runFused(FusedKernels.rmsNorm, { x: input as tf.Tensor, w: w as tf.Tensor }, { eps })
      : (() => {
        const r = tf.rsqrt(tf.add(tf.mean(tf.square(input as tf.Tensor2D), -1, true), eps)) // [N, 1]
        const n = tf.mul(input as tf.Tensor2D, r)
        return [tf.mul(n, w as tf.Tensor1D), n, r]
      })()
    ;(save as tf.GradSaveFunc)([n, r, w as tf.Tensor1D])
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: Array<tf.Tensor>) => {
        const [sn, sr, sw] = saved
        if (fused(FusedKernels.rmsNormGrad)) return runFused(FusedKernels.rmsNormGrad, { dy, n: sn, r: sr, w: sw })
        const g = tf.mul(dy, sw)
        const dx = tf.mul(tf.sub(g, tf.mul(sn, tf.mean(tf.mul(g, sn), -1, true))), sr)
        return [dx, tf.sum(tf.mul(dy, sn), 0)]
      }
    }
  })(x, weight) as tf.Tensor2D

/**
 * silu(gate)·up with a hand-written gradient: with s = σ(gate) and a = gate·s,
 * d up = dy·a and d gate = dy·up·(s + a − a·s) — 6 ops where autodiff takes 8, or one fused
 * kernel.
 */
const swiGlu = tf.customGrad((gate: tf.Tensor | tf.GradSaveFunc, up: tf.Tensor | tf.GradSaveFunc, save: tf.Tensor | tf.GradSaveFunc) => {
  const s = tf.sigmoid(gate as tf.Tensor)
  const a = tf.mul(gate as tf.Tensor, s)
  ;(save as tf.GradSaveFunc)([s, a, up as tf.Tensor])
  return {
    value: tf.mul(a, up as tf.Tensor),
    gradFunc: (dy: tf.Tensor, saved: Array<tf.Tensor>) => {
      const [ss, sa, su] = saved
      if (fused(FusedKernels.swiGluGrad)) return runFused(FusedKernels.swiGluGrad, { dy, s: ss, a: sa, up: su })
      return [tf.mul(tf.mul(dy, su), tf.sub(tf.add(ss, sa), tf.mul(sa, ss))), tf.mul(dy, sa)]
    }
  }
}) as unknown as (gate: tf.Tensor2D, up: tf.Tensor2D) => tf.Tensor2D

/** SwiGLU: down(silu(gate(x)) · up(x)), with the optional offset and observer of the down_proj input. */
const mlp = (p: LayerParams, x: tf.Tensor2D, offset?: tf.Tensor2D, observe?: (act: tf.Tensor2D) => void): tf.Tensor2D => {
  const gate = linear(x, p.gate)
  let act: tf.Tensor2D = swiGlu(gate, linear(x, p.up)) // [B*T, I]
  if (offset !== undefined) act = tf.add(act, offset)
  observe?.(act)
  return linear(act, p.down)
}

export interface ForwardResult {
  readonly logits: tf.Tensor3D // [B, T, V]
  /** Present when the forward was given a cache: the cache extended by these T positions. */
  readonly cache?: KvCache
}

/** The decoder's output before any head: final-normed hidden states [B*T, D]. */
export interface HiddenResult {
  readonly hidden: tf.Tensor2D // [B*T, D]
  readonly cache?: KvCache
}

export interface ForwardOptions {
  /** Positions seen so far; the new tokens follow them and the result carries the extended cache. */
  readonly cache?: KvCache
  /**
   * Left-padding slots per sequence (only without a cache; a cache carries its own). Padding
   * slots are never attended to and positions count from each sequence's first real token.
   */
  readonly padding?: ReadonlyArray<number>
  /**
   * Called with intermediate tensors of layer i, for the pruning scorers: "block.in" and
   * "block.out" the hidden states around the block [B*T, D], "attn.context" the merged heads
   * before o_proj [B*T, H*hd], "mlp.act" the input of down_proj [B*T, I]. The tensors belong to
   * the forward (reduce or read them; tf.keep and dispose one to hold it longer).
   */
  readonly observe?: Observer
  /**
   * Added to the input of down_proj of layer i ([B*T, I], usually zeros): the gradient of a loss
   * with respect to these offsets is its gradient with respect to the MLP activations.
   */
  readonly mlpOffsets?: ReadonlyArray<tf.Tensor2D | undefined>
}

/** The intermediate tensors `ForwardOptions.observe` receives. */
export type ObservedName = "block.in" | "attn.context" | "mlp.act" | "block.out"

export type Observer = (layer: number, name: ObservedName, tensor: tf.Tensor2D) => void

/** An empty cache for a batch, to start incremental decoding. */
export const emptyCache = (padding: ReadonlyArray<number>): KvCache => ({ length: 0, padding, layers: [] })

/**
 * The decoder without a head: final-normed hidden states for token ids [B, T] at slots
 * cache.length.., extending the cache when given. The LM head (`forward`) and a reward
 * model's score head (reward/ClassifierReward.ts) both read these. Call inside tf.tidy (or
 * dispose the result); the input cache is not disposed.
 */
export const hiddenStates = (
  config: ModelConfig,
  params: Params,
  ids: tf.Tensor2D,
  options: ForwardOptions = {}
): HiddenResult => {
  const [B, T] = ids.shape
  const cache = options.cache
  const P = cache?.length ?? 0
  const padding = cache?.padding ?? options.padding ?? new Array<number>(B).fill(0)
  let h = tf.gather(params.embed, tf.reshape(ids, [B * T])) as tf.Tensor2D // [B*T, D]
  const layers: Array<{ k: tf.Tensor4D; v: tf.Tensor4D }> = []
  const context = blockContext(config, B, T, padding, P)
  config.layers.forEach((_, i) => {
    const past = cache !== undefined && P > 0 ? cache.layers[i] : undefined
    const out = decoderBlock(config, i, params.layers[i], h, context, { past, observe: options.observe, mlpOffset: options.mlpOffsets?.[i] })
    h = out.h
    layers.push({ k: out.k, v: out.v })
  })
  const hidden = rmsNorm(h, params.norm, config.rmsNormEps)
  return cache === undefined ? { hidden } : { hidden, cache: { length: P + T, padding, layers } }
}

/**
 * Logits for token ids [B, T] at slots cache.length.., extending the cache when given.
 * Call inside tf.tidy (or dispose the result); the input cache is not disposed.
 */
export const forward = (
  config: ModelConfig,
  params: Params,
  ids: tf.Tensor2D,
  options: ForwardOptions = {}
): ForwardResult => {
  const [B, T] = ids.shape
  const { hidden, cache } = hiddenStates(config, params, ids, options)
  const logits = tf.reshape(lmHead(config, params, hidden), [B, T, config.vocabSize]) as tf.Tensor3D
  return cache === undefined ? { logits } : { logits, cache }
}

/**
 * Logits [N, V] of final hidden states [N, D] (normalised): the LM head, or the embedding when
 * tied, read transposed in place (a transposed copy is vocabulary × hidden floats per call:
 * 0.5 GiB for Qwen2.5-0.5B, which overran the wasm heap while decoding).
 */
export const lmHead = (config: ModelConfig, params: Params, final: tf.Tensor2D): tf.Tensor2D =>
  params.lmHead !== undefined
    ? linear(final, params.lmHead)
    : tf.matMul(final, params.embed, false, true)

/**
 * log p(targets[n]) under the LM head for final hidden states [N, D], at `temperature`: [N].
 * The full-vocabulary logits in one tensor, unless the backend cannot bind them (webgpu), where
 * the head is split into vocabulary chunks (VocabChunks.ts; not with a LoRA head).
 */
export const targetLogProbs = (
  config: ModelConfig,
  params: Params,
  final: tf.Tensor2D,
  targets: tf.Tensor1D,
  temperature = 1
): tf.Tensor1D => {
  const chunk = headChunkRows(config, final.shape[0])
  if (chunk < config.vocabSize && params.lmHead?.lora === undefined) {
    return chunkedTargetLogProbs(config, params, final, targets, chunk, temperature)
  }
  let logits = lmHead(config, params, final)
  if (temperature !== 1) logits = tf.div(logits, temperature) as tf.Tensor2D
  return tf.sum(tf.mul(tf.logSoftmax(logits), tf.oneHot(targets, config.vocabSize)), -1) as tf.Tensor1D
}

/** What every block of one forward pass shares: batch shape, rotary tables, cached length, padding. */
export interface BlockContext {
  readonly B: number
  readonly T: number
  readonly rope: { cos: tf.Tensor2D; sin: tf.Tensor2D }
  readonly P: number
  readonly padding: ReadonlyArray<number>
}

/** The context of a forward over [B, T] new tokens after P cached ones (rotary tables made here). */
export const blockContext = (config: ModelConfig, B: number, T: number, padding: ReadonlyArray<number>, P = 0): BlockContext => {
  const padded = padding.some((p) => p > 0)
  const positions = (padded ? padding : [0]).flatMap((pad) =>
    Array.from({ length: T }, (_, t) => Math.max(P + t - pad, 0)))
  return { B, T, P, padding, rope: ropeTables(config.headDim, config.ropeTheta, positions, config.ropeScaling) }
}

/**
 * Decoder block i on hidden states h [B*T, D]: h + attention(norm(h)), then + mlp(norm(·)).
 * The whole forward runs these in turn; block-by-block execution (Blockwise.ts) runs them one
 * layer's weights at a time.
 */
export const decoderBlock = (
  config: ModelConfig,
  i: number,
  p: LayerParams,
  h: tf.Tensor2D,
  context: BlockContext,
  options: {
    readonly past?: { k: tf.Tensor4D; v: tf.Tensor4D } | undefined
    readonly observe?: Observer | undefined
    readonly mlpOffset?: tf.Tensor2D | undefined
  } = {}
): { readonly h: tf.Tensor2D; readonly k: tf.Tensor4D; readonly v: tf.Tensor4D } => {
  const { B, T, rope, P, padding } = context
  const shape = config.layers[i]
  const observe = options.observe
  const normed = rmsNorm(h, p.inputNorm, config.rmsNormEps)
  observe?.(i, "block.in", h)
  const a = attention(config, shape, p, normed, B, T, rope, options.past, P, padding, observe && ((name, t) => observe(i, name, t)))
  let out = tf.add(h, a.out) as tf.Tensor2D
  out = tf.add(out, mlp(p, rmsNorm(out, p.postNorm, config.rmsNormEps), options.mlpOffset, observe && ((act) => observe(i, "mlp.act", act))))
  observe?.(i, "block.out", out)
  return { h: out, k: a.k, v: a.v }
}

/**
 * Mean next-token cross-entropy over ids [B, T]: position t predicts token t+1. `weights`
 * [B, T-1] (1 counts, 0 ignores) masks prompt tokens for SFT; by default every target counts.
 */
export const nextTokenLoss = (
  config: ModelConfig,
  params: Params,
  ids: tf.Tensor2D,
  weights?: tf.Tensor2D,
  options: Pick<ForwardOptions, "observe" | "mlpOffsets"> = {}
): tf.Scalar =>
  tf.tidy(() => {
    const [B, T] = ids.shape
    const inputs = tf.slice(ids, [0, 0], [B, T - 1])
    const targets = tf.reshape(tf.slice(ids, [0, 1], [B, T - 1]), [B * (T - 1)])
    const picked = targetLogProbs(config, params, hiddenStates(config, params, inputs, options).hidden, tf.cast(targets, "int32") as tf.Tensor1D)
    const w = weights === undefined ? tf.onesLike(picked) : tf.reshape(tf.cast(weights, "float32"), [B * (T - 1)])
    return tf.div(tf.neg(tf.sum(tf.mul(picked, w))), tf.maximum(tf.sum(w), 1)) as tf.Scalar
  })
