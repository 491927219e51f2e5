/**
 * The names and symbolic dimensions of a decoder's inputs and outputs, exactly as Hugging Face
 * Optimum's `text-generation-with-past` exports name them, so ONNX Runtime generation code,
 * Optimum's ORTModelForCausalLM and transformers.js feed the exported model unchanged.
 */
export const decoderInputs = {
  inputIds: "input_ids",
  attentionMask: "attention_mask",
  positionIds: "position_ids",
  /** 1 for the tokens calibration statistics count, 0 for padding (simmer's own sessions only). */
  tokenMask: "token_mask",
  /** The next token at every position, whose −log p the `nll` head gives (simmer's own sessions only). */
  targets: "targets",
  pastKey: (layer: number) => `past_key_values.${layer}.key`,
  pastValue: (layer: number) => `past_key_values.${layer}.value`
} as const

export const decoderOutputs = {
  logits: "logits",
  /** A reward model's score at every position [B, T] (simmer's own sessions only; never exported). */
  scores: "scores",
  /** −log p(target) at every position [B, T] (simmer's own sessions only; never exported). */
  targetNll: "target_nll",
  /** Per layer, Σ |a| and Σ a² of the MLP activation over the counted tokens [I] (simmer's own sessions only). */
  mlpAbsSum: (layer: number) => `mlp.${layer}.abs_sum`,
  mlpSquareSum: (layer: number) => `mlp.${layer}.square_sum`,
  presentKey: (layer: number) => `present.${layer}.key`,
  presentValue: (layer: number) => `present.${layer}.value`,
  /** A step's own keys and values [T, B, KV, hd], for a cache the caller appends to (simmer's own sessions only). */
  newKey: (layer: number) => `new.${layer}.key`,
  newValue: (layer: number) => `new.${layer}.value`
} as const

/** Optimum's dimension names. */
export const decoderDims = {
  batch: "batch_size",
  sequence: "sequence_length",
  past: "past_sequence_length",
  total: "past_sequence_length + sequence_length"
} as const
