/**
 * Floating-point operations of one whole-sequence forward (prefill) of a decoder, from its shape
 * alone, to turn a measured time into GFLOP/s that can be held against the machine's ceiling.
 * A multiply-add counts as 2. Per forward of B sequences of T tokens:
 *   matrix products  2 · B·T · (Σ_layers (D·H·hd + 2·D·KV·hd + H·hd·D + 3·D·I) + D·V)
 *                    (q, k, v, o, gate, up, down, and the LM head, which is a product even when
 *                    it reuses the tied embedding; the embedding lookup itself is no product)
 *   attention        Σ_layers 4 · B · H · hd · T²
 *                    (Q·Kᵀ and P·V over the full T×T square: ONNX Runtime's and PyTorch's eager
 *                    kernels compute it all and mask the upper half; a causal kernel does half)
 * Norms, RoPE, softmax, SiLU and biases are O(B·T·D) and left out (under 1% at these shapes).
 */
import type { ModelConfig } from "../src/model/ModelConfig.ts"

export interface ForwardFlops {
  readonly matMul: number
  readonly attention: number
  readonly total: number
}

export const forwardFlops = (config: ModelConfig, batch: number, seq: number): ForwardFlops => {
  const D = config.hiddenSize
  const hd = config.headDim
  const tokens = batch * seq
  let weights = D * config.vocabSize
  let attention = 0
  for (const layer of config.layers) {
    const q = layer.numHeads * hd
    const kv = layer.numKeyValueHeads * hd
    weights += D * q + 2 * D * kv + q * D + 3 * D * layer.intermediateSize
    attention += 4 * batch * layer.numHeads * hd * seq * seq
  }
  const matMul = 2 * tokens * weights
  return { matMul, attention, total: matMul + attention }
}
