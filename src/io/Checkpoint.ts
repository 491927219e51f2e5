/**
 * Hugging Face checkpoint folders: config.json + model.safetensors (or
 * model.safetensors.index.json + shards), generation_config.json and tokenizer files, loaded
 * into simmer's ModelConfig and tfjs Params and saved back in exactly the layout transformers'
 * `save_pretrained` produces (tensor names, shard names and split, index and config text).
 *
 * Loading checks the tensors against `paramSpecs(config)` before reading any data: every
 * expected tensor present with exactly the expected shape, and nothing else. A
 * sequence-classification checkpoint (a reward model: `XxxForSequenceClassification`) has the
 * same decoder tensors, `score.weight` [num_labels, hidden] instead of `lm_head.weight`, and is
 * loaded only when the caller asks for that kind. Two exceptions,
 * both from real transformers checkpoints:
 * - `rotary_emb.inv_freq` buffers (saved by old Llama code) are ignored: they are derived from
 *   rope_theta, not learned;
 * - `lm_head.weight` in a tied model (tie_word_embeddings true; transformers omits it) is
 *   accepted and ignored when it is bit-identical to `model.embed_tokens.weight`, as some
 *   exporters duplicate shared tensors; when it differs the checkpoint contradicts its config
 *   (transformers would silently keep one of the two) and loading fails with TensorMismatch.
 *
 * Saving is atomic (see AtomicWrite): everything is written and fsynced in a temporary sibling
 * folder, then renamed into place.
 */
import { copyFile, readdir, readFile, stat, writeFile } from "node:fs/promises"
import { basename, join } from "node:path"
import * as tf from "@tensorflow/tfjs"
import { Effect, Result, Schema, type Scope } from "effect"
import type { ModelConfig } from "../model/ModelConfig.ts"
import type { Params, ParamSpec } from "../model/Params.ts"
import { assembleParams, decoderSpecs, paramSpecs } from "../model/Params.ts"
import { type AtomicFolderOptions, writeFolderAtomically } from "./AtomicWrite.ts"
import { type Dtype, dtypeSize } from "./Dtype.ts"
import { CheckpointNotFound, CorruptCheckpoint, describeCause, errnoCode, FileSystemError, fsError, InvalidConfig, listSome, schemaProblems, type TargetExists, TensorMismatch, type UnsupportedDtype, UnsupportedModel } from "./Errors.ts"
import {
  architectureClass,
  formatConfigJson,
  type HfConfig,
  labelCount,
  type ModelKind,
  modelKind,
  readHfConfig,
  toHfConfigJson,
  toModelConfig
} from "./HfConfig.ts"
import { configFloatKeys, toPythonJson } from "./PythonJson.ts"
import { openSafetensors, type SafetensorsFile, type TensorInfo, type TensorSource, writeSafetensors } from "./Safetensors.ts"

export const configFileName = "config.json"
export const generationConfigFileName = "generation_config.json"
export const singleWeightsFileName = "model.safetensors"
export const weightsIndexFileName = "model.safetensors.index.json"

/** Tokenizer files transformers' tokenizers read and save_pretrained writes; passed through unchanged. */
export const tokenizerFileNames: ReadonlyArray<string> = [
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "vocab.json",
  "merges.txt",
  "vocab.txt",
  "tokenizer.model",
  "chat_template.jinja",
  "chat_template.json"
]

/** transformers' default `max_shard_size` ("5GB" = 5·10^9 bytes). */
export const defaultMaxShardBytes = 5_000_000_000

export interface CheckpointFiles {
  readonly dir: string
  readonly config: string
  /** The safetensors files the weights were read from. */
  readonly weights: ReadonlyArray<string>
  readonly index: string | undefined
  readonly generationConfig: string | undefined
  /** Tokenizer files present in the folder (see `tokenizerFileNames`), to copy along on save. */
  readonly tokenizer: ReadonlyArray<string>
}

/** A checkpoint folder whose headers are validated and whose tensors are read on demand. */
export interface LazyCheckpoint extends Omit<LoadedCheckpoint, "params" | "scoreHead"> {
  /** A tensor by Hugging Face name, float32 in file orientation (BF16 / F16 decoded). */
  readonly read: (name: string) => Effect.Effect<Float32Array, CorruptCheckpoint | FileSystemError>
  /** Rows [first, first + count) of a tensor (along its first axis), in file orientation. */
  readonly readRows: (name: string, first: number, count: number) => Effect.Effect<Float32Array, CorruptCheckpoint | FileSystemError>
  /** A parameter in internal orientation (Linear weights transposed to [in, out]), as Params hold it. */
  readonly readInternal: (name: string) => Effect.Effect<Float32Array, CorruptCheckpoint | FileSystemError>
}

export interface LoadedCheckpoint {
  readonly config: ModelConfig
  /** The config.json as read, to write back with `saveCheckpoint`. */
  readonly hfConfig: HfConfig
  /** A causal LM, or a sequence classifier (reward model) whose head is `scoreHead`. */
  readonly kind: ModelKind
  /**
   * Fresh tensors in internal orientation; the caller owns (and disposes) them. A sequence
   * classifier's params have no `lmHead` (release them with `disposeCheckpoint`).
   */
  readonly params: Params
  /** Sequence classifiers only: `score.weight` in internal orientation, [hidden, num_labels]. */
  readonly scoreHead?: tf.Tensor2D
  /** The on-disk dtype; when tensors mix dtypes, the one holding most parameters. */
  readonly dtype: Dtype
  /** generation_config.json content, if the folder has one. */
  readonly generationConfig: unknown
  readonly files: CheckpointFiles
}

export type LoadCheckpointError =
  | CheckpointNotFound
  | InvalidConfig
  | UnsupportedModel
  | UnsupportedDtype
  | CorruptCheckpoint
  | TensorMismatch
  | FileSystemError

export type SaveCheckpointError = UnsupportedModel | TensorMismatch | FileSystemError | TargetExists

const WeightIndex = Schema.Struct({
  metadata: Schema.optionalKey(Schema.NullOr(Schema.Record(Schema.String, Schema.Unknown))),
  weight_map: Schema.Record(Schema.String, Schema.String)
})
const decodeWeightIndex = Schema.decodeUnknownResult(WeightIndex)

/** The tensor name of a sequence classifier's head. */
export const scoreHeadName = "score.weight"

/** Every tensor of a checkpoint of this kind, its head included. */
const checkpointSpecs = (config: ModelConfig, hf: HfConfig, kind: ModelKind): Array<ParamSpec> =>
  kind === "causal-lm" ? paramSpecs(config) : [
    ...decoderSpecs(config),
    {
      name: scoreHeadName,
      shape: [labelCount(hf), config.hiddenSize],
      transposed: true,
      get: () => {
        throw new Error("score.weight is not part of a causal LM's parameters")
      }
    }
  ]

/** Releases every tensor of a loaded checkpoint, the score head of a sequence classifier included. */
export const disposeCheckpoint = (checkpoint: Pick<LoadedCheckpoint, "config" | "kind" | "params" | "scoreHead">): void => {
  const specs = checkpoint.kind === "causal-lm" ? paramSpecs(checkpoint.config) : decoderSpecs(checkpoint.config)
  for (const spec of specs) spec.get(checkpoint.params).dispose()
  checkpoint.scoreHead?.dispose()
}

/** Buffers transformers derives from the config instead of learning; skipped when present. */
const isIgnoredBuffer = (name: string) => /(^|\.)rotary_emb\.inv_freq$/.test(name)

const internalShape = (spec: ParamSpec): Array<number> =>
  spec.transposed ? [spec.shape[1], spec.shape[0]] : [...spec.shape]

const sameShape = (a: ReadonlyArray<number>, b: ReadonlyArray<number>) =>
  a.length === b.length && a.every((d, i) => d === b[i])

const shapeText = (shape: ReadonlyArray<number>) => `[${shape.join(", ")}]`

/** [rows, cols] → [cols, rows], in cache-friendly tiles. */
export const transpose2d = (data: Float32Array, rows: number, cols: number): Float32Array => {
  const out = new Float32Array(data.length)
  const tile = 32
  for (let r0 = 0; r0 < rows; r0 += tile) {
    const r1 = Math.min(r0 + tile, rows)
    for (let c0 = 0; c0 < cols; c0 += tile) {
      const c1 = Math.min(c0 + tile, cols)
      for (let r = r0; r < r1; r++) {
        const from = r * cols
        for (let c = c0; c < c1; c++) out[c * rows + r] = data[from + c]
      }
    }
  }
  return out
}

/**
 * Where transformers' state_dict puts each tensor: module registration order (embed_tokens;
 * per layer self_attn q, k, v, o, mlp gate, up, down, input_layernorm,
 * post_attention_layernorm; norm; lm_head), weight before bias. Shards are cut in this order.
 */
export const stateDictOrder = <T extends { readonly name: string }>(specs: ReadonlyArray<T>): Array<T> => {
  const withinLayer = [
    "self_attn.q_proj.weight",
    "self_attn.q_proj.bias",
    "self_attn.k_proj.weight",
    "self_attn.k_proj.bias",
    "self_attn.v_proj.weight",
    "self_attn.v_proj.bias",
    "self_attn.o_proj.weight",
    "self_attn.o_proj.bias",
    "mlp.gate_proj.weight",
    "mlp.gate_proj.bias",
    "mlp.up_proj.weight",
    "mlp.up_proj.bias",
    "mlp.down_proj.weight",
    "mlp.down_proj.bias",
    "input_layernorm.weight",
    "post_attention_layernorm.weight"
  ]
  const key = (name: string): [number, number, number] => {
    if (name === "model.embed_tokens.weight") return [0, 0, 0]
    const layer = /^model\.layers\.(\d+)\.(.+)$/.exec(name)
    if (layer !== null) {
      const at = withinLayer.indexOf(layer[2])
      return [1, Number(layer[1]), at === -1 ? withinLayer.length : at]
    }
    if (name === "model.norm.weight") return [2, 0, 0]
    if (name === "lm_head.weight") return [3, 0, 0]
    return [4, 0, 0]
  }
  return [...specs].sort((a, b) => {
    const ka = key(a.name)
    const kb = key(b.name)
    return ka[0] - kb[0] || ka[1] - kb[1] || ka[2] - kb[2]
  })
}

export interface ShardPlan {
  readonly files: ReadonlyArray<{ readonly name: string; readonly tensors: ReadonlyArray<string> }>
  /** Sum of tensor bytes, as the index's metadata.total_size. */
  readonly totalSize: number
}

/**
 * huggingface_hub's `split_state_dict_into_shards_factory`: walk tensors in state_dict order,
 * start a new shard when the next tensor would push the current one past the limit, give a
 * tensor larger than the limit a shard of its own. One shard is `model.safetensors`; several
 * are `model-0000i-of-0000n.safetensors`.
 */
export const planShards = (
  tensors: ReadonlyArray<{ readonly name: string; readonly bytes: number }>,
  maxShardBytes: number
): ShardPlan => {
  const shards: Array<Array<string>> = []
  let current: Array<string> = []
  let currentSize = 0
  let totalSize = 0
  for (const t of tensors) {
    totalSize += t.bytes
    if (t.bytes > maxShardBytes) {
      shards.push([t.name])
      continue
    }
    if (currentSize + t.bytes > maxShardBytes) {
      shards.push(current)
      current = []
      currentSize = 0
    }
    current.push(t.name)
    currentSize += t.bytes
  }
  if (current.length > 0) shards.push(current)
  if (shards.length <= 1) return { files: [{ name: singleWeightsFileName, tensors: shards[0] ?? [] }], totalSize }
  const n = String(shards.length).padStart(5, "0")
  return {
    files: shards.map((tensors, i) => ({ name: `model-${String(i + 1).padStart(5, "0")}-of-${n}.safetensors`, tensors })),
    totalSize
  }
}

interface Location {
  readonly file: SafetensorsFile
  readonly info: TensorInfo
}

/**
 * The entries of a checkpoint folder; CheckpointNotFound when it does not exist or is a file.
 * Every command opens a checkpoint through here first, so each mistake has one message.
 */
export const listCheckpointFolder = Effect.fnUntraced(function*(dir: string) {
  const info = yield* Effect.tryPromise({
    try: () => stat(dir),
    catch: (cause) =>
      errnoCode(cause) === "ENOENT" || errnoCode(cause) === "ENOTDIR"
        ? new CheckpointNotFound({ path: dir, message: `The checkpoint folder ${dir} does not exist.` })
        : fsError(dir, "inspect")(cause)
  })
  if (!info.isDirectory()) {
    return yield* new CheckpointNotFound({ path: dir, message: `${dir} is a file, not a checkpoint folder.` })
  }
  return yield* Effect.tryPromise({ try: () => readdir(dir), catch: fsError(dir, "list") })
})

const readJsonFile = (path: string) =>
  Effect.tryPromise({ try: () => readFile(path, "utf8"), catch: fsError(path, "read") }).pipe(
    Effect.flatMap((text) =>
      Effect.try({
        try: () => JSON.parse(text) as unknown,
        catch: (cause) => new CorruptCheckpoint({ path, message: `${path} is not valid JSON: ${describeCause(cause)}.` })
      })
    )
  )

/** The shard files of an index, and where it says each tensor is. */
const readWeightIndex = Effect.fnUntraced(function*(dir: string, entries: ReadonlyArray<string>) {
  const path = join(dir, weightsIndexFileName)
  const raw = yield* readJsonFile(path)
  const decoded = decodeWeightIndex(raw, { errors: "all", reportInput: true })
  if (Result.isFailure(decoded)) {
    return yield* new CorruptCheckpoint({
      path,
      message: `${path} is not a valid weight index: ${listSome(schemaProblems(decoded.failure))}.`
    })
  }
  const weightMap = decoded.success.weight_map
  const shards = [...new Set(Object.values(weightMap))].sort()
  for (const shard of shards) {
    // The index is data from the internet: it must not point outside the folder.
    if (shard !== basename(shard) || shard === "." || shard === ".." || shard.includes("\\")) {
      return yield* new CorruptCheckpoint({
        path,
        message: `${path} names the shard "${shard}", which is not a file name in the checkpoint folder.`
      })
    }
    if (!entries.includes(shard)) {
      return yield* new CorruptCheckpoint({
        path,
        message: `${path} maps tensors (e.g. "${Object.keys(weightMap).find((k) => weightMap[k] === shard)}") to the shard ` +
          `${join(dir, shard)}, which does not exist (incomplete download or copy?).`
      })
    }
  }
  return { path, weightMap, shards }
})

const kindNames: Record<ModelKind, string> = {
  "causal-lm": "a causal language model",
  "sequence-classification": "a sequence classifier (reward model)"
}

/** The kind config.json describes, or UnsupportedModel when it is not the expected one. */
export const expectKind = (
  configPath: string,
  hfConfig: HfConfig,
  expected: ModelKind | "either"
): Effect.Effect<ModelKind, UnsupportedModel> => {
  const kind = modelKind(hfConfig)
  return expected === "either" || kind === expected ? Effect.succeed(kind) : Effect.fail(
    new UnsupportedModel({
      path: configPath,
      message: `${configPath} describes ${kindNames[kind]} (${architectureClass(hfConfig)}), but ${kindNames[expected]} is ` +
        (expected === "causal-lm"
          ? "needed here; a reward model scores text with `simmer reward` and is named as a plan's reward, not its model."
          : "needed here.")
    })
  )
}

/**
 * Opens a checkpoint folder of the expected kind without reading its weights: a causal LM (the
 * default), a sequence classifier (a reward model), or "either". config.json, the index and
 * every shard's header are read and checked against the config (same errors as
 * `loadCheckpoint`; a kind other than the expected one is UnsupportedModel), and the shards stay
 * open until the Scope closes, so tensors can then be read one at a time, or in rows, by
 * offset. A model of any size costs only its headers here.
 */
export const openLazyCheckpoint = Effect.fn("Checkpoint.openLazily")(function*(
  dir: string,
  expected: ModelKind | "either" = "causal-lm"
): Effect.fn.Return<LazyCheckpoint, LoadCheckpointError, Scope.Scope> {
  const { entries, config, hfConfig } = yield* readCheckpointConfig(dir)
  const configPath = join(dir, configFileName)
  const kind = yield* expectKind(configPath, hfConfig, expected)

  const generationConfigPath = entries.includes(generationConfigFileName) ? join(dir, generationConfigFileName) : undefined
  const generationConfig = generationConfigPath === undefined ? undefined : yield* readJsonFile(generationConfigPath).pipe(
    Effect.mapError((e) =>
      e._tag === "CorruptCheckpoint" ? new InvalidConfig({ path: e.path, message: e.message }) : e
    )
  )

  // transformers prefers the single file when both forms are present; so do we.
  const index = entries.includes(singleWeightsFileName) || !entries.includes(weightsIndexFileName)
    ? undefined
    : yield* readWeightIndex(dir, entries)
  if (index === undefined && !entries.includes(singleWeightsFileName)) {
    const pickle = entries.filter((e) => e.endsWith(".bin") || e.endsWith(".pt") || e.endsWith(".pth"))
    if (pickle.length > 0) {
      return yield* new UnsupportedModel({
        path: join(dir, pickle[0]),
        message: `${dir} has PyTorch pickle weights (${pickle.join(", ")}) but no model.safetensors; simmer reads ` +
          `safetensors only (convert with transformers: load the model and save_pretrained(..., safe_serialization=True)).`
      })
    }
    return yield* new CheckpointNotFound({
      path: join(dir, singleWeightsFileName),
      message: `${dir} has a config.json but no weights (neither model.safetensors nor model.safetensors.index.json).`
    })
  }
  const weightFiles = index === undefined ? [singleWeightsFileName] : index.shards
  const weightsLabel = index === undefined ? join(dir, singleWeightsFileName) : index.path

  const opened = yield* Effect.gen(function*() {
      const locations = new Map<string, Location>()
      for (const name of weightFiles) {
        const path = join(dir, name)
        const file = yield* openSafetensors(path)
        for (const info of file.header.tensors) {
          if (index !== undefined) {
            const mapped = index.weightMap[info.name]
            if (mapped !== name) {
              return yield* new CorruptCheckpoint({
                path: index.path,
                message: mapped === undefined
                  ? `${index.path} does not list tensor "${info.name}", which the shard ${path} contains.`
                  : `${index.path} maps tensor "${info.name}" to ${mapped}, but the shard ${path} also contains it.`
              })
            }
          }
          locations.set(info.name, { file, info })
        }
      }
      if (index !== undefined) {
        const absent = Object.keys(index.weightMap).filter((name) => !locations.has(name))
        if (absent.length > 0) {
          return yield* new CorruptCheckpoint({
            path: index.path,
            message: `${index.path} maps tensors to shards that do not contain them: ` +
              listSome(absent.map((n) => `"${n}" → ${index.weightMap[n]}`)) + "."
          })
        }
      }

      const specs = checkpointSpecs(config, hfConfig, kind)
      const expectedNames = new Set(specs.map((s) => s.name))
      const missing: Array<string> = []
      const wrongShape: Array<string> = []
      for (const spec of specs) {
        const at = locations.get(spec.name)
        if (at === undefined) missing.push(spec.name)
        else if (!sameShape(at.info.shape, spec.shape)) {
          wrongShape.push(`${spec.name} is ${shapeText(at.info.shape)}, config.json implies ${shapeText(spec.shape)}`)
        }
      }
      const unexpected: Array<string> = []
      let tiedHead: Location | undefined
      for (const name of locations.keys()) {
        if (expectedNames.has(name) || isIgnoredBuffer(name)) continue
        if (name === "lm_head.weight" && config.tieWordEmbeddings && kind === "causal-lm") tiedHead = locations.get(name)
        else unexpected.push(name)
      }
      if (missing.length + unexpected.length + wrongShape.length > 0) {
        const parts: Array<string> = []
        if (missing.length > 0) parts.push(`missing ${missing.length} tensor(s): ${listSome(missing, 8)}`)
        if (unexpected.length > 0) parts.push(`${unexpected.length} unexpected tensor(s): ${listSome(unexpected, 8)}`)
        if (wrongShape.length > 0) parts.push(`wrong shapes: ${listSome(wrongShape, 8)}`)
        return yield* new TensorMismatch({
          path: weightsLabel,
          missing,
          unexpected,
          wrongShape,
          message: `${weightsLabel} does not match ${configPath}: ${parts.join("; ")}.`
        })
      }
      if (tiedHead !== undefined) {
        const embed = locations.get("model.embed_tokens.weight")!
        const same = sameShape(tiedHead.info.shape, embed.info.shape) &&
          bitEqual(yield* tiedHead.file.read(tiedHead.info), yield* embed.file.read(embed.info))
        if (!same) {
          const problem = "lm_head.weight differs from model.embed_tokens.weight although tie_word_embeddings is true"
          return yield* new TensorMismatch({
            path: weightsLabel,
            missing: [],
            unexpected: ["lm_head.weight"],
            wrongShape: [],
            message: `${weightsLabel} does not match ${configPath}: ${problem}, so it is unclear which one the model uses.`
          })
        }
      }

      // Majority dtype by parameter count.
      const byDtype = new Map<Dtype, number>()
      for (const spec of specs) {
        const info = locations.get(spec.name)!.info
        byDtype.set(info.dtype, (byDtype.get(info.dtype) ?? 0) + (info.end - info.begin) / dtypeSize[info.dtype])
      }
      const dtype = [...byDtype.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? "F32"

      return { locations, dtype }
    })

  const files: CheckpointFiles = {
    dir,
    config: configPath,
    weights: weightFiles.map((f) => join(dir, f)),
    index: index?.path,
    generationConfig: generationConfigPath,
    tokenizer: tokenizerFileNames.filter((f) => entries.includes(f)).map((f) => join(dir, f))
  }
  const at = (name: string) => {
    const location = opened.locations.get(name)
    if (location === undefined) throw new Error(`openLazyCheckpoint: ${name} is not a tensor of ${dir}`)
    return location
  }
  const byName = new Map(checkpointSpecs(config, hfConfig, kind).map((spec) => [spec.name, spec]))
  return {
    config,
    hfConfig,
    kind,
    dtype: opened.dtype,
    generationConfig,
    files,
    read: (name) => Effect.suspend(() => at(name).file.read(at(name).info)),
    readRows: (name, first, count) => Effect.suspend(() => at(name).file.readRows(at(name).info, first, count)),
    readInternal: (name) =>
      Effect.suspend(() => {
        const spec = byName.get(name)
        if (spec === undefined) return Effect.die(new Error(`openLazyCheckpoint: ${name} is not a parameter of the model`))
        return at(name).file.read(at(name).info).pipe(
          Effect.map((raw) => (spec.transposed ? transpose2d(raw, spec.shape[0], spec.shape[1]) : raw))
        )
      })
  }
})

/**
 * Loads a checkpoint folder into tensors: a causal LM unless another kind is expected (see
 * `openLazyCheckpoint`). Fails with CheckpointNotFound (no folder, config.json or weights),
 * InvalidConfig / UnsupportedModel / UnsupportedDtype (config.json or tensor dtypes, or another
 * kind), CorruptCheckpoint (safetensors or index problems), TensorMismatch (tensors vs config),
 * or FileSystemError. No tensors are left allocated on failure.
 */
export const loadCheckpoint = Effect.fn("Checkpoint.load")(function*(
  dir: string,
  options: {
    readonly expected?: ModelKind | "either"
    /** Told as each tensor starts loading (progress). */
    readonly onTensor?: (name: string, done: number, total: number) => void
  } = {}
): Effect.fn.Return<LoadedCheckpoint, LoadCheckpointError> {
  return yield* Effect.scoped(Effect.gen(function*() {
    const open = yield* openLazyCheckpoint(dir, options.expected)
    const specs = checkpointSpecs(open.config, open.hfConfig, open.kind)
    const tensors = new Map<string, tf.Tensor>()
    yield* Effect.forEach(specs, (spec, i) =>
      Effect.gen(function*() {
        options.onTensor?.(spec.name, i, specs.length)
        const data = yield* open.readInternal(spec.name)
        tensors.set(spec.name, tf.tensor(data, internalShape(spec), "float32"))
      }), { discard: true }).pipe(
        Effect.onError(() => Effect.sync(() => tensors.forEach((t) => t.dispose())))
      )
    const { read: _read, readRows: _readRows, readInternal: _readInternal, ...rest } = open
    // A sequence classifier's decoder has no LM head, whatever tie_word_embeddings says.
    const decoderConfig = open.kind === "causal-lm" ? open.config : { ...open.config, tieWordEmbeddings: true }
    const scoreHead = tensors.get(scoreHeadName) as tf.Tensor2D | undefined
    return {
      ...rest,
      params: assembleParams(decoderConfig, (name) => tensors.get(name)!),
      ...(scoreHead !== undefined ? { scoreHead } : {})
    }
  }))
})

const bitEqual = (a: Float32Array, b: Float32Array): boolean => {
  if (a.length !== b.length) return false
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length)
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length)
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return false
  return true
}

/** A file to put into the checkpoint: a path to copy (by its base name), or content to write. */
export type ExtraFile = string | { readonly name: string; readonly content: string | Uint8Array }

/** What a checkpoint folder holds besides its tensors, and how to lay it out. */
export interface CheckpointLayoutOptions extends AtomicFolderOptions {
  readonly config: ModelConfig
  /** The config.json the model came from; its other keys are kept (see `toHfConfigJson`). */
  readonly hfConfig: HfConfig
  /** On-disk dtype of every tensor; torch_dtype in config.json follows it. */
  readonly dtype: Dtype
  /** Largest shard in bytes before splitting, as transformers' max_shard_size (default 5 GB). */
  readonly maxShardBytes?: number
  /** generation_config.json content, written as transformers writes it. */
  readonly generationConfig?: unknown
  /** Tokenizer files and the like (e.g. `LoadedCheckpoint.files.tokenizer`). */
  readonly extraFiles?: ReadonlyArray<ExtraFile>
  /** Told the name of each tensor as its writing starts, with how many are written before it (progress). */
  readonly onTensor?: (name: string, done: number, total: number) => void
}

export interface SaveCheckpointOptions extends CheckpointLayoutOptions {
  readonly params: Params
}

export interface SavedCheckpoint {
  readonly dir: string
  /** File names written, in writing order. */
  readonly files: ReadonlyArray<string>
}

/**
 * Writes a checkpoint folder atomically. Fails before writing anything when config.json cannot
 * describe the model (UnsupportedModel) or the params do not match the config (TensorMismatch);
 * fails with TargetExists when `dir` exists and `onExisting` is not "replace".
 */
export const saveCheckpoint = Effect.fn("Checkpoint.save")(function*(
  dir: string,
  options: SaveCheckpointOptions
): Effect.fn.Return<SavedCheckpoint, SaveCheckpointError> {
  const { config, params, dtype } = options
  // Checked before anything is read, as saveCheckpointTensors checks it again before writing.
  yield* toHfConfigJson(config, options.hfConfig, dtype, join(dir, configFileName))

  const specs = paramSpecs(config)
  const missing: Array<string> = []
  const wrongShape: Array<string> = []
  const sources = new Map<string, TensorSource<never>>()
  for (const spec of specs) {
    let tensor: tf.Tensor | undefined
    try {
      tensor = spec.get(params)
    } catch {
      tensor = undefined
    }
    if (tensor === undefined || tensor.isDisposed) {
      missing.push(spec.name)
      continue
    }
    const expected = internalShape(spec)
    if (!sameShape(tensor.shape, expected)) {
      wrongShape.push(
        `${spec.name} is ${shapeText(tensor.shape)}, the config implies ${shapeText(expected)} (internal orientation)`
      )
      continue
    }
    const t = tensor
    sources.set(spec.name, {
      name: spec.name,
      dtype,
      shape: spec.shape,
      data: Effect.promise(() => t.data<"float32">()).pipe(
        Effect.map((values) => (spec.transposed ? transpose2d(values, expected[0], expected[1]) : values))
      )
    })
  }
  if (missing.length + wrongShape.length > 0) {
    const parts: Array<string> = []
    if (missing.length > 0) parts.push(`missing ${listSome(missing, 8)}`)
    if (wrongShape.length > 0) parts.push(`wrong shapes: ${listSome(wrongShape, 8)}`)
    return yield* new TensorMismatch({
      path: dir,
      missing,
      unexpected: [],
      wrongShape,
      message: `Cannot save ${dir}: the parameters do not match the model config (${parts.join("; ")}).`
    })
  }

  return yield* saveCheckpointTensors(dir, { ...options, tensor: (spec) => sources.get(spec.name)!.data })
})

/**
 * Writes a checkpoint folder atomically from tensors produced one at a time, in file
 * orientation (`ParamSpec.shape`): each is pulled when the writer reaches it, so a model never
 * has to be in memory at once (streamed surgery, random checkpoints of real sizes).
 */
export const saveCheckpointTensors = Effect.fn("Checkpoint.saveTensors")(function*<E>(
  dir: string,
  options: CheckpointLayoutOptions & { readonly tensor: (spec: ParamSpec) => Effect.Effect<Float32Array, E> }
): Effect.fn.Return<SavedCheckpoint, E | SaveCheckpointError> {
  const { config, dtype } = options
  const configJson = yield* toHfConfigJson(config, options.hfConfig, dtype, join(dir, configFileName))
  const specs = paramSpecs(config)
  const sources = new Map<string, TensorSource<E>>()
  let started = 0
  for (const spec of specs) {
    sources.set(spec.name, {
      name: spec.name,
      dtype,
      shape: spec.shape,
      data: Effect.suspend(() => {
        options.onTensor?.(spec.name, started++, specs.length)
        return options.tensor(spec)
      })
    })
  }
  const ordered = stateDictOrder(specs).map((s) => ({
    name: s.name,
    bytes: s.shape.reduce((a, b) => a * b, 1) * dtypeSize[dtype]
  }))
  const plan = planShards(ordered, options.maxShardBytes ?? defaultMaxShardBytes)

  const extras = (options.extraFiles ?? []).map((f) => (typeof f === "string" ? { name: basename(f), source: f } : f))
  const reserved = new Set([configFileName, weightsIndexFileName, ...plan.files.map((f) => f.name)])
  if (options.generationConfig !== undefined) reserved.add(generationConfigFileName)
  const seen = new Set<string>()
  for (const extra of extras) {
    if (reserved.has(extra.name) || seen.has(extra.name) || extra.name !== basename(extra.name)) {
      const problem = `saveCheckpoint: extra file name "${extra.name}" is reserved, repeated or not a plain name`
      return yield* Effect.die(new Error(problem))
    }
    seen.add(extra.name)
  }

  const written: Array<string> = []
  yield* writeFolderAtomically(dir, (temp) =>
    Effect.gen(function*() {
      const writeText = (name: string, text: string) =>
        Effect.tryPromise({ try: () => writeFile(join(temp, name), text), catch: fsError(join(dir, name), "write") }).pipe(
          Effect.tap(() => Effect.sync(() => written.push(name)))
        )
      yield* writeText(configFileName, formatConfigJson(configJson))
      if (options.generationConfig !== undefined) {
        yield* writeText(generationConfigFileName, toPythonJson(options.generationConfig, { floatKeys: configFloatKeys }) + "\n")
      }
      for (const shard of plan.files) {
        yield* writeSafetensors<E>(join(temp, shard.name), shard.tensors.map((name) => sources.get(name)!))
        written.push(shard.name)
      }
      if (plan.files.length > 1) {
        const weightMap: Record<string, string> = {}
        for (const shard of plan.files) for (const name of shard.tensors) weightMap[name] = shard.name
        const index = { metadata: { total_size: plan.totalSize }, weight_map: weightMap }
        yield* writeText(weightsIndexFileName, toPythonJson(index) + "\n")
      }
      for (const extra of extras) {
        if ("source" in extra) {
          yield* Effect.tryPromise({
            try: () => copyFile(extra.source, join(temp, extra.name)),
            catch: fsError(extra.source, "copy")
          })
        } else {
          yield* Effect.tryPromise({
            try: () => writeFile(join(temp, extra.name), extra.content),
            catch: fsError(join(dir, extra.name), "write")
          })
        }
        written.push(extra.name)
      }
    }), options)
  return { dir, files: written }
})

/** The shape a checkpoint folder describes (its config.json), without reading any weights; also the folder's entries. */
export const readCheckpointConfig = Effect.fn("Checkpoint.readConfig")(function*(
  dir: string
): Effect.fn.Return<
  { readonly config: ModelConfig; readonly hfConfig: HfConfig; readonly entries: ReadonlyArray<string> },
  CheckpointNotFound | InvalidConfig | UnsupportedModel | UnsupportedDtype | FileSystemError
> {
  const entries = yield* listCheckpointFolder(dir)
  const configPath = join(dir, configFileName)
  if (!entries.includes(configFileName)) {
    return yield* new CheckpointNotFound({
      path: configPath,
      message: `${dir} has no config.json, so it is not a Hugging Face checkpoint folder.`
    })
  }
  const hfConfig = yield* readHfConfig(configPath)
  return { config: toModelConfig(hfConfig), hfConfig, entries }
})
