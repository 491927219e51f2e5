/**
 * Hugging Face `config.json` of LlamaForCausalLM and Qwen2ForCausalLM: its Schema, the
 * conversion to simmer's ModelConfig, and the config.json to write for a (pruned) ModelConfig.
 *
 * The Schema names the fields simmer uses and keeps every other key as it was, so a config
 * written back differs from the original only where the model changed. Fields that
 * transformers fills with class defaults when absent get the same defaults here
 * (rms_norm_eps 1e-6, rope_theta 10000, max_position_embeddings 2048 for Llama and 32768 for
 * Qwen2, tie_word_embeddings false, hidden_act "silu", no biases); the five shape fields are
 * required, because a silently defaulted 4096-wide, 32-layer shape is never what a
 * checkpoint meant. Both transformers 4.x keys (`torch_dtype`, `rope_theta`, `rope_scaling`)
 * and 5.x keys (`dtype`, `rope_parameters`) are read.
 */
import { readFile } from "node:fs/promises"
import { Effect, Result, Schema } from "effect"
import type { LayerShape, Llama3RopeScaling, ModelConfig } from "../model/ModelConfig.ts"
import { isUniform, shapeProblem } from "../model/ModelConfig.ts"
import { type Dtype, dtypeFromTorchName, torchDtypeName } from "./Dtype.ts"
import {
  CheckpointNotFound,
  describeCause,
  errnoCode,
  FileSystemError,
  InvalidConfig,
  schemaProblems,
  UnsupportedDtype,
  UnsupportedModel
} from "./Errors.ts"
import { configFloatKeys, toPythonJson } from "./PythonJson.ts"

const PositiveInt = Schema.Int.check(Schema.isGreaterThan(0))
const PositiveNumber = Schema.Finite.check(Schema.isGreaterThan(0))

/**
 * simmer's extension for layers of different widths (pruning with global allocation): one
 * entry per decoder layer. When present it overrides the scalar shape keys, which then hold the
 * largest value over the layers. No other runtime reads it; see the README, "Layers of different widths".
 */
export const LayerShapeJson = Schema.Struct({
  intermediate_size: PositiveInt,
  num_attention_heads: PositiveInt,
  num_key_value_heads: PositiveInt
})

/** config.json of a Llama or Qwen2 causal LM; unknown keys are kept as they are. */
export const HfConfig = Schema.StructWithRest(
  Schema.Struct({
    model_type: Schema.Literals(["llama", "qwen2"]),
    architectures: Schema.optionalKey(Schema.Array(Schema.String)),
    vocab_size: PositiveInt,
    hidden_size: PositiveInt,
    intermediate_size: PositiveInt,
    num_hidden_layers: PositiveInt,
    num_attention_heads: PositiveInt,
    /** Absent or null: as many as query heads (plain multi-head attention). */
    num_key_value_heads: Schema.optionalKey(Schema.NullOr(PositiveInt)),
    /** Absent or null: hidden_size // num_attention_heads. */
    head_dim: Schema.optionalKey(Schema.NullOr(PositiveInt)),
    rms_norm_eps: Schema.optionalKey(PositiveNumber),
    rope_theta: Schema.optionalKey(PositiveNumber),
    rope_scaling: Schema.optionalKey(Schema.Unknown),
    rope_parameters: Schema.optionalKey(Schema.Unknown),
    max_position_embeddings: Schema.optionalKey(PositiveInt),
    tie_word_embeddings: Schema.optionalKey(Schema.Boolean),
    attention_bias: Schema.optionalKey(Schema.Boolean),
    mlp_bias: Schema.optionalKey(Schema.Boolean),
    hidden_act: Schema.optionalKey(Schema.String),
    torch_dtype: Schema.optionalKey(Schema.NullOr(Schema.String)),
    dtype: Schema.optionalKey(Schema.NullOr(Schema.String)),
    use_sliding_window: Schema.optionalKey(Schema.Boolean),
    layer_types: Schema.optionalKey(Schema.Array(Schema.String)),
    quantization_config: Schema.optionalKey(Schema.Unknown),
    layer_shapes: Schema.optionalKey(Schema.Array(LayerShapeJson))
  }),
  [Schema.Record(Schema.String, Schema.Unknown)]
)
export type HfConfig = typeof HfConfig.Type

const decode = Schema.decodeUnknownResult(HfConfig)

const causalLmClass = { llama: "LlamaForCausalLM", qwen2: "Qwen2ForCausalLM" } as const

/**
 * The sequence-classification class of each architecture: the same decoder with a linear
 * `score` head instead of `lm_head`, the layout RLHF tools save reward models in.
 */
export const sequenceClassifierClass = {
  llama: "LlamaForSequenceClassification",
  qwen2: "Qwen2ForSequenceClassification"
} as const

/** What a checkpoint's head does: predict the next token, or score a whole sequence. */
export type ModelKind = "causal-lm" | "sequence-classification"

/** The kind a config.json's `architectures` names (a causal LM when it names none). */
export const modelKind = (hf: HfConfig): ModelKind =>
  hf.architectures?.[0] === sequenceClassifierClass[hf.model_type] ? "sequence-classification" : "causal-lm"

/**
 * How many outputs a sequence classifier's head has, as transformers derives it: the entries
 * of `id2label`, else `num_labels`, else its default of 2. A reward model has 1.
 */
export const labelCount = (hf: HfConfig): number => {
  const id2label = hf.id2label
  if (typeof id2label === "object" && id2label !== null && !Array.isArray(id2label)) return Object.keys(id2label).length
  return typeof hf.num_labels === "number" ? hf.num_labels : 2
}

/** The transformers class of a decoded config, as `architectures` names it or its causal default. */
export const architectureClass = (hf: HfConfig): string =>
  modelKind(hf) === "sequence-classification" ? sequenceClassifierClass[hf.model_type] : causalLmClass[hf.model_type]

/** transformers' class defaults for the optional fields. */
const defaults = {
  llama: { maxPositionEmbeddings: 2048 },
  qwen2: { maxPositionEmbeddings: 32768 },
  rmsNormEps: 1e-6,
  ropeTheta: 10000
} as const

const describeModel = (raw: Record<string, unknown>): string => {
  const parts: Array<string> = []
  if (raw.model_type !== undefined) parts.push(`model_type ${JSON.stringify(raw.model_type)}`)
  if (raw.architectures !== undefined) parts.push(`architectures ${JSON.stringify(raw.architectures)}`)
  return parts.join(" and ")
}

/** The architecture fields, checked first so a Mistral config is called unsupported rather than invalid. */
const checkArchitecture = (path: string, raw: Record<string, unknown>): UnsupportedModel | undefined => {
  const modelType = raw.model_type
  const architectures = raw.architectures
  const supported = "simmer supports LlamaForCausalLM (model_type \"llama\") and Qwen2ForCausalLM (model_type \"qwen2\"), " +
    "and their ForSequenceClassification reward models"
  if (typeof modelType === "string" && modelType !== "llama" && modelType !== "qwen2") {
    return new UnsupportedModel({ path, message: `${path} describes a model with ${describeModel(raw)}; ${supported}.` })
  }
  if (Array.isArray(architectures) && architectures.every((a) => typeof a === "string")) {
    const known = (type: "llama" | "qwen2") => [causalLmClass[type], sequenceClassifierClass[type]] as ReadonlyArray<string>
    const ok = modelType === "llama" || modelType === "qwen2"
      ? architectures.length === 1 && known(modelType).includes(architectures[0])
      : architectures.every((a) => known("llama").includes(a) || known("qwen2").includes(a))
    if (!ok) {
      return new UnsupportedModel({
        path,
        message: `${path} describes a model with ${describeModel(raw)}; ${supported}, with exactly that class in "architectures".`
      })
    }
  }
  return undefined
}

const llama3Keys = ["factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"] as const

/**
 * Why the RoPE settings are neither plain rotary embeddings nor Llama 3's scaling, or the theta
 * and scaling they carry.
 */
const ropeSettings = (
  hf: HfConfig
): { problem: string } | { theta: number | undefined; scaling: Llama3RopeScaling | undefined } => {
  let theta: number | undefined
  let scaling: Llama3RopeScaling | undefined
  for (const key of ["rope_scaling", "rope_parameters"] as const) {
    const value = hf[key]
    if (value === undefined || value === null) continue
    if (typeof value !== "object" || Array.isArray(value)) return { problem: `${key} is ${JSON.stringify(value)}` }
    const fields = value as Record<string, unknown>
    const kind = fields.rope_type ?? fields.type
    const known: ReadonlyArray<string> = kind === "llama3" ? llama3Keys : []
    const extra = Object.keys(fields).filter((k) => k !== "rope_type" && k !== "type" && k !== "rope_theta" && !known.includes(k))
    if ((kind !== "default" && kind !== "llama3") || extra.length > 0) return { problem: `${key} is ${JSON.stringify(value)}` }
    if (kind === "llama3") {
      const bad = llama3Keys.find((k) => typeof fields[k] !== "number" || !((fields[k] as number) > 0))
      if (bad !== undefined) return { problem: `${key}.${bad} is ${JSON.stringify(fields[bad])}` }
      if (!((fields.high_freq_factor as number) > (fields.low_freq_factor as number))) {
        return { problem: `${key}.high_freq_factor must exceed low_freq_factor` }
      }
      scaling = {
        kind: "llama3",
        factor: fields.factor as number,
        lowFreqFactor: fields.low_freq_factor as number,
        highFreqFactor: fields.high_freq_factor as number,
        originalMaxPositionEmbeddings: fields.original_max_position_embeddings as number
      }
    }
    if (fields.rope_theta !== undefined) {
      if (typeof fields.rope_theta !== "number" || !(fields.rope_theta > 0)) {
        return { problem: `${key}.rope_theta is ${JSON.stringify(fields.rope_theta)}` }
      }
      theta = fields.rope_theta
    }
  }
  return { theta, scaling }
}

/**
 * Validates parsed config.json content. Order of the checks: architecture (UnsupportedModel),
 * the Schema (InvalidConfig listing every violation), dtype (UnsupportedDtype), features
 * simmer does not implement (UnsupportedModel), then shape consistency (InvalidConfig).
 */
export const decodeHfConfig = Effect.fnUntraced(function*(
  raw: unknown,
  path: string
): Effect.fn.Return<HfConfig, InvalidConfig | UnsupportedModel | UnsupportedDtype> {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    const found = raw === null ? "null" : Array.isArray(raw) ? "an array" : typeof raw
    return yield* new InvalidConfig({ path, message: `${path} must hold a JSON object, found ${found}.` })
  }
  const architecture = checkArchitecture(path, raw as Record<string, unknown>)
  if (architecture !== undefined) return yield* architecture
  const decoded = decode(raw, { errors: "all", reportInput: true })
  if (Result.isFailure(decoded)) {
    const problems = schemaProblems(decoded.failure)
    return yield* new InvalidConfig({
      path,
      message: `${path} is not a valid Llama/Qwen2 config ` +
        `(${problems.length} problem${problems.length === 1 ? "" : "s"}): ${problems.join("; ")}.`
    })
  }
  const hf = decoded.success
  for (const key of ["torch_dtype", "dtype"] as const) {
    const value = hf[key]
    if (typeof value === "string" && dtypeFromTorchName(value) === undefined) {
      return yield* new UnsupportedDtype({
        path,
        dtype: value,
        message: `${path} declares ${key} "${value}"; simmer loads float32, float16 and bfloat16 models only.`
      })
    }
  }
  const unsupported = (feature: string) =>
    new UnsupportedModel({ path, message: `${path}: ${feature}, which simmer does not implement.` })
  if (hf.quantization_config !== undefined && hf.quantization_config !== null) {
    return yield* unsupported("the model is quantized (quantization_config is set); simmer needs unquantized float weights")
  }
  if ((hf.hidden_act ?? "silu") !== "silu") {
    return yield* unsupported(`hidden_act is "${hf.hidden_act}"; only "silu" (SwiGLU MLP) is supported`)
  }
  const rope = ropeSettings(hf)
  if ("problem" in rope) {
    return yield* unsupported(`${rope.problem}; only plain rotary embeddings and Llama 3 scaling (rope_type "llama3") are supported`)
  }
  if (hf.use_sliding_window === true) {
    return yield* unsupported("use_sliding_window is true; sliding-window attention is not supported")
  }
  const slidingLayers = (hf.layer_types ?? []).filter((t) => t !== "full_attention")
  if (slidingLayers.length > 0) {
    const kind = JSON.stringify(slidingLayers[0])
    return yield* unsupported(`layer_types contains ${kind}; only "full_attention" layers are supported`)
  }
  if (hf.layer_types !== undefined && hf.layer_types.length !== hf.num_hidden_layers) {
    return yield* new InvalidConfig({
      path,
      message: `${path}: layer_types has ${hf.layer_types.length} entries but num_hidden_layers is ${hf.num_hidden_layers}.`
    })
  }
  if (hf.layer_shapes !== undefined && hf.layer_shapes.length !== hf.num_hidden_layers) {
    return yield* new InvalidConfig({
      path,
      message: `${path}: layer_shapes has ${hf.layer_shapes.length} entries but num_hidden_layers is ${hf.num_hidden_layers}.`
    })
  }
  const kv = hf.num_key_value_heads ?? hf.num_attention_heads
  if (hf.layer_shapes === undefined && hf.num_attention_heads % kv !== 0) {
    return yield* new InvalidConfig({
      path,
      message: `${path}: num_attention_heads (${hf.num_attention_heads}) must be a multiple of num_key_value_heads (${kv}).`
    })
  }
  const problem = shapeProblem(toModelConfig(hf))
  if (problem !== undefined) {
    return yield* new InvalidConfig({ path, message: `${path} describes an impossible model: ${problem}.` })
  }
  return hf
})

/** Parses config.json text (JSON, then `decodeHfConfig`). */
export const parseHfConfig = Effect.fnUntraced(function*(
  text: string,
  path: string
): Effect.fn.Return<HfConfig, InvalidConfig | UnsupportedModel | UnsupportedDtype> {
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch (cause) {
    return yield* new InvalidConfig({ path, message: `${path} is not valid JSON: ${describeCause(cause)}.` })
  }
  return yield* decodeHfConfig(raw, path)
})

/** Reads and validates a config.json file. */
export const readHfConfig = Effect.fn("HfConfig.read")(function*(
  path: string
): Effect.fn.Return<HfConfig, CheckpointNotFound | FileSystemError | InvalidConfig | UnsupportedModel | UnsupportedDtype> {
  const text = yield* Effect.tryPromise({
    try: () => readFile(path, "utf8"),
    catch: (cause) =>
      errnoCode(cause) === "ENOENT"
        ? new CheckpointNotFound({
          path,
          message: `${path} does not exist; a Hugging Face checkpoint folder needs a config.json.`
        })
        : new FileSystemError({ path, message: `Cannot read ${path}: ${describeCause(cause)}.` })
  })
  return yield* parseHfConfig(text, path)
})

/** The head size transformers uses: head_dim, else hidden_size // num_attention_heads. */
const headDimOf = (hf: HfConfig): number => hf.head_dim ?? Math.floor(hf.hidden_size / hf.num_attention_heads)

/** simmer's ModelConfig for a config decoded by `decodeHfConfig`. */
export const toModelConfig = (hf: HfConfig): ModelConfig => {
  const rope = ropeSettings(hf)
  const ropeTheta = ("theta" in rope ? rope.theta : undefined) ?? hf.rope_theta ?? defaults.ropeTheta
  const ropeScaling = "scaling" in rope ? rope.scaling : undefined
  const layer = {
    intermediateSize: hf.intermediate_size,
    numHeads: hf.num_attention_heads,
    numKeyValueHeads: hf.num_key_value_heads ?? hf.num_attention_heads
  }
  const layers = hf.layer_shapes?.map((l) => ({
    intermediateSize: l.intermediate_size,
    numHeads: l.num_attention_heads,
    numKeyValueHeads: l.num_key_value_heads
  })) ?? Array.from({ length: hf.num_hidden_layers }, () => ({ ...layer }))
  const isQwen2 = hf.model_type === "qwen2"
  return {
    architecture: hf.model_type,
    vocabSize: hf.vocab_size,
    hiddenSize: hf.hidden_size,
    headDim: headDimOf(hf),
    layers,
    rmsNormEps: hf.rms_norm_eps ?? defaults.rmsNormEps,
    ropeTheta,
    ...(ropeScaling !== undefined ? { ropeScaling } : {}),
    maxPositionEmbeddings: hf.max_position_embeddings ?? defaults[hf.model_type].maxPositionEmbeddings,
    tieWordEmbeddings: hf.tie_word_embeddings ?? false,
    // Qwen2 always has q/k/v biases and never an o_proj bias; Llama's attention_bias covers all four.
    qkvBias: isQwen2 ? true : hf.attention_bias ?? false,
    outputBias: isQwen2 ? false : hf.attention_bias ?? false,
    mlpBias: isQwen2 ? false : hf.mlp_bias ?? false
  }
}

/**
 * The config.json content for `config`, starting from the config it was loaded from: every
 * key simmer does not manage stays as it was (transformers_version included: the file keeps
 * the format of the transformers release that wrote the original). Keys simmer manages are
 * updated; one that was absent is added only when the default would now be wrong (e.g.
 * head_dim once pruning leaves num_attention_heads · head_dim ≠ hidden_size). Layers of
 * different shapes are recorded in `layer_shapes`, with the largest of each in the scalar keys
 * (so a runtime that ignores layer_shapes fails on a shape mismatch instead of loading garbage).
 * Fails when the model cannot be described: biases the architecture cannot express, or a
 * different architecture than the original.
 */
export const toHfConfigJson = Effect.fnUntraced(function*(
  config: ModelConfig,
  original: HfConfig,
  dtype: Dtype,
  path = "config.json"
): Effect.fn.Return<Record<string, unknown>, UnsupportedModel> {
  const cannot = (why: string) => new UnsupportedModel({ path, message: `Cannot write ${path}: ${why}.` })
  const problem = shapeProblem(config)
  if (problem !== undefined) return yield* cannot(`the model shape is impossible (${problem})`)
  if (config.architecture !== original.model_type) {
    return yield* cannot(`the model is ${config.architecture} but the original config.json is ${original.model_type}`)
  }
  if (config.architecture === "qwen2" && (!config.qkvBias || config.outputBias || config.mlpBias)) {
    return yield* cannot("Qwen2 always has q/k/v biases and no o_proj or MLP biases")
  }
  if (config.architecture === "llama" && config.qkvBias !== config.outputBias) {
    return yield* cannot("Llama's attention_bias puts a bias on all of q/k/v/o_proj or on none")
  }
  const widest = (key: keyof LayerShape) => Math.max(...config.layers.map((l) => l[key]))
  const layer: LayerShape = {
    intermediateSize: widest("intermediateSize"),
    numHeads: widest("numHeads"),
    numKeyValueHeads: widest("numKeyValueHeads")
  }
  const out: Record<string, unknown> = { ...original }
  delete out.layer_shapes
  if (!isUniform(config)) {
    out.layer_shapes = config.layers.map((l) => ({
      intermediate_size: l.intermediateSize,
      num_attention_heads: l.numHeads,
      num_key_value_heads: l.numKeyValueHeads
    }))
  }
  // Sets a managed key when it was present, or when its absence would now mean something else.
  const set = (key: string, value: unknown, impliedWhenAbsent: unknown) => {
    if (key in original || value !== impliedWhenAbsent) out[key] = value
  }
  set("vocab_size", config.vocabSize, undefined)
  set("hidden_size", config.hiddenSize, undefined)
  set("intermediate_size", layer.intermediateSize, undefined)
  set("num_hidden_layers", config.layers.length, undefined)
  set("num_attention_heads", layer.numHeads, undefined)
  if (original.num_key_value_heads === null && layer.numKeyValueHeads === layer.numHeads) {
    // null meant "as many as query heads" and still does.
  } else {
    set("num_key_value_heads", layer.numKeyValueHeads, layer.numHeads)
  }
  const impliedHeadDim = Math.floor(config.hiddenSize / layer.numHeads)
  if (original.head_dim === null && config.headDim === impliedHeadDim) {
    // null still means hidden_size // num_attention_heads.
  } else {
    set("head_dim", config.headDim, impliedHeadDim)
  }
  set("rms_norm_eps", config.rmsNormEps, defaults.rmsNormEps)
  set("max_position_embeddings", config.maxPositionEmbeddings, defaults[config.architecture].maxPositionEmbeddings)
  set("tie_word_embeddings", config.tieWordEmbeddings, false)
  // transformers 5 (and some 4.x exports) keep rope_theta inside rope_parameters / rope_scaling.
  let ropeInside = false
  for (const key of ["rope_scaling", "rope_parameters"] as const) {
    const value = original[key]
    if (typeof value === "object" && value !== null && "rope_theta" in value) {
      out[key] = { ...(value as Record<string, unknown>), rope_theta: config.ropeTheta }
      ropeInside = true
    }
  }
  if (!ropeInside || "rope_theta" in original) set("rope_theta", config.ropeTheta, defaults.ropeTheta)
  if (config.architecture === "llama") {
    set("attention_bias", config.qkvBias, false)
    set("mlp_bias", config.mlpBias, false)
  }
  if (original.layer_types !== undefined) out.layer_types = config.layers.map(() => "full_attention")
  const torchName = torchDtypeName[dtype]
  if ("dtype" in original) out.dtype = torchName
  if ("torch_dtype" in original || !("dtype" in original)) out.torch_dtype = torchName
  return out
  })

/** config.json bytes as transformers writes them: sorted keys, indent 2, Python floats, newline. */
export const formatConfigJson = (json: unknown): string => toPythonJson(json, { floatKeys: configFloatKeys }) + "\n"

