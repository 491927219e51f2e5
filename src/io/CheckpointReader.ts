/**
 * Reading Hugging Face checkpoint folders (config.json + model.safetensors, or
 * model.safetensors.index.json + shards, generation_config.json and tokenizer files) into
 * simmer's ModelConfig and tfjs Params, all at once or one tensor at a time.
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
 */
import { readFile } from "node:fs/promises"
import { basename, join } from "node:path"
import * as tf from "@tensorflow/tfjs"
import { Effect, Result, Schema, type Scope } from "effect"
import { assembleParams, decoderSpecs, paramSpecs } from "../model/Params.ts"
import type { CheckpointFiles, LazyCheckpoint, LoadCheckpointError, LoadedCheckpoint } from "./Checkpoint.ts"
import { expectKind, readCheckpointConfig } from "./CheckpointFolder.ts"
import {
  checkpointSpecs,
  configFileName,
  generationConfigFileName,
  internalShape,
  sameShape,
  scoreHeadName,
  shapeText,
  singleWeightsFileName,
  tokenizerFileNames,
  transpose2d,
  weightsIndexFileName
} from "./CheckpointLayout.ts"
import { type Dtype, dtypeSize } from "./Dtype.ts"
import { CheckpointNotFound, CorruptCheckpoint, describeCause, fsError, InvalidConfig, listSome, schemaProblems, TensorMismatch, UnsupportedModel } from "./Errors.ts"
import type { ModelKind } from "./HfConfig.ts"
import { openSafetensors, type SafetensorsFile, type TensorInfo } from "./Safetensors.ts"

const WeightIndex = Schema.Struct({
  metadata: Schema.optionalKey(Schema.NullOr(Schema.Record(Schema.String, Schema.Unknown))),
  weight_map: Schema.Record(Schema.String, Schema.String)
})
const decodeWeightIndex = Schema.decodeUnknownResult(WeightIndex)

/** Releases every tensor of a loaded checkpoint, the score head of a sequence classifier included. */
export const disposeCheckpoint = (checkpoint: Pick<LoadedCheckpoint, "config" | "kind" | "params" | "scoreHead">): void => {
  const specs = checkpoint.kind === "causal-lm" ? paramSpecs(checkpoint.config) : decoderSpecs(checkpoint.config)
  for (const spec of specs) spec.get(checkpoint.params).dispose()
  checkpoint.scoreHead?.dispose()
}

/** Buffers transformers derives from the config instead of learning; skipped when present. */
const isIgnoredBuffer = (name: string) => /(^|\.)rotary_emb\.inv_freq$/.test(name)

interface Location {
  readonly file: SafetensorsFile
  readonly info: TensorInfo
}

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
