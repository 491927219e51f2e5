/**
 * Writing checkpoint folders in exactly the layout transformers' `save_pretrained` produces
 * (tensor names, shard names and split, index and config text; see CheckpointLayout), from
 * Params or from tensors produced one at a time.
 *
 * Saving is atomic (see AtomicWrite): everything is written and fsynced in a temporary sibling
 * folder, then renamed into place.
 */
import { copyFile, writeFile } from "node:fs/promises"
import { basename, join } from "node:path"
import type * as tf from "@tensorflow/tfjs"
import { Effect } from "effect"
import type { ModelConfig } from "../model/ModelConfig.ts"
import type { Params, ParamSpec } from "../model/Params.ts"
import { paramSpecs } from "../model/Params.ts"
import { type AtomicFolderOptions, writeFolderAtomically } from "./AtomicWrite.ts"
import type { SaveCheckpointError } from "./Checkpoint.ts"
import {
  configFileName,
  defaultMaxShardBytes,
  generationConfigFileName,
  internalShape,
  planShards,
  sameShape,
  shapeText,
  stateDictOrder,
  transpose2d,
  weightsIndexFileName
} from "./CheckpointLayout.ts"
import { type Dtype, dtypeSize } from "./Dtype.ts"
import { fsError, listSome, TensorMismatch } from "./Errors.ts"
import { formatConfigJson, type HfConfig, toHfConfigJson } from "./HfConfig.ts"
import { configFloatKeys, toPythonJson } from "./PythonJson.ts"
import { type TensorSource, writeSafetensors } from "./Safetensors.ts"

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
