/**
 * The names and symbolic dimensions of a decoder's inputs and outputs, exactly as Hugging Face
 * Optimum's `text-generation-with-past` exports name them, so ONNX Runtime generation code,
 * Optimum's ORTModelForCausalLM and transformers.js feed the exported model unchanged.
 */
export const decoderInputs = {
  inputIds: "input_ids",
  attentionMask: "attention_mask",
  positionIds: "position_ids",
  pastKey: (layer: number) => `past_key_values.${layer}.key`,
  pastValue: (layer: number) => `past_key_values.${layer}.value`
} as const

export const decoderOutputs = {
  logits: "logits",
  /** A reward model's score at every position [B, T] (simmer's own sessions only; never exported). */
  scores: "scores",
  presentKey: (layer: number) => `present.${layer}.key`,
  presentValue: (layer: number) => `present.${layer}.value`
} as const

/** Optimum's dimension names. */
export const decoderDims = {
  batch: "batch_size",
  sequence: "sequence_length",
  past: "past_sequence_length",
  total: "past_sequence_length + sequence_length"
} as const
