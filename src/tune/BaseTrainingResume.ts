/**
 * The saved state of an unfinished `simmer train-base`, so that a stopped training continues
 * exactly where it stopped: a folder beside the output (`<out>.training`) holding the weights
 * and the AdamW moments as float32 tensors (`w.*`, `m.*`, `v.*`, bit for bit) and state.json
 * with the step, the optimizer's step and the settings it was started with. Which task and which
 * examples a step trains on are functions of (seed, step) alone (see `baseBatch`), so the step
 * is the whole data cursor and random state; the weights' initialisation is in the weights.
 */
import { readFile, rm, writeFile } from "node:fs/promises"
import { join, resolve } from "node:path"
import * as tf from "@tensorflow/tfjs"
import { Effect, Result, Schema } from "effect"
import { pathExists, recoverFolder, writeFolderAtomically } from "../io/AtomicWrite.ts"
import { fsError } from "../io/Errors.ts"
import { takeProcessLock } from "../io/ProcessLock.ts"
import { type NamedTensor, readSafetensors, writeSafetensors } from "../io/Safetensors.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { disposeParams, initParams, paramTensors } from "../model/Params.ts"
import type { BaseTrainingState } from "./BaseTraining.ts"
import { momentTensors, paramsFrom, restoreWeightShaped, weightShapedTensors } from "./TunerState.ts"

/** Where the training that writes `out` keeps its state until it finishes. */
export const trainingStateDir = (out: string): string => `${resolve(out)}.training`

const stateFileName = "state.json"
const tensorsFileName = "state.safetensors"

const SavedProgress = Schema.Struct({
  step: Schema.Int,
  optimizerStep: Schema.Int,
  /** Tokens trained on so far, for the throughput the end of the training reports. */
  tokens: Schema.Number,
  /** What the training was started with (recipe, initial weights): a continuation must match it. */
  settings: Schema.Unknown
})
const decodeProgress = Schema.decodeUnknownResult(Schema.fromJsonString(SavedProgress))

/** A saved training state that cannot be continued: other settings, or damaged files. */
export class UnusableTrainingState extends Schema.TaggedError<UnusableTrainingState>()("UnusableTrainingState", {
  path: Schema.String,
  message: Schema.String
}) {}

/** Holds `out`'s training for this process until the scope closes: one train-base per output at a time. */
export const lockTraining = (out: string) =>
  takeProcessLock(`${trainingStateDir(out)}.lock`, {
    held: (path, holder) =>
      new UnusableTrainingState({ path, message: `${resolve(out)} is being trained by another simmer process (${holder}).` }),
    failed: (path, cause) => new UnusableTrainingState({ path, message: `Cannot lock ${path}: ${cause}.` })
  })

/** The settings, flattened to `path value` lines ("recipe.peakLr 0.003"). */
const flatten = (value: unknown, path: string, out: Map<string, string>): Map<string, string> => {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const [key, inner] of Object.entries(value)) flatten(inner, path === "" ? key : `${path}.${key}`, out)
  } else out.set(path, JSON.stringify(value))
  return out
}

/** What differs between the saved settings and these: "recipe.peakLr 0.003, not 0.01". */
const settingsDifferences = (saved: unknown, now: unknown): Array<string> => {
  const [before, after] = [flatten(saved, "", new Map()), flatten(now, "", new Map())]
  const keys = [...new Set([...before.keys(), ...after.keys()])]
  return keys.filter((key) => before.get(key) !== after.get(key))
    .map((key) => `${key} ${before.get(key) ?? "unset"}, not ${after.get(key) ?? "unset"}`)
}

/** Writes the state atomically (a crash leaves the previous save or this one, never a mix). */
export const saveTrainingState = (
  dir: string,
  config: ModelConfig,
  state: BaseTrainingState,
  progress: { readonly tokens: number; readonly settings: unknown }
) =>
  writeFolderAtomically(dir, (temp) =>
    Effect.gen(function*() {
      const tensors = [...yield* weightShapedTensors(config, "w", paramTensors(config, state.params)), ...yield* momentTensors(config, state.optimizer)]
      yield* writeSafetensors(join(temp, tensorsFileName), tensors.map((t) => ({ name: t.name, dtype: "F32" as const, shape: t.shape, data: Effect.succeed(t.data) })))
      const saved: typeof SavedProgress.Type = { step: state.step, optimizerStep: state.optimizer.step, ...progress }
      yield* Effect.tryPromise({ try: () => writeFile(join(temp, stateFileName), JSON.stringify(saved, null, 2) + "\n"), catch: fsError(join(dir, stateFileName), "write") })
    }), { onExisting: "replace" })

/**
 * The state saved in `dir` for a training with these settings, `undefined` when there is none,
 * or UnusableTrainingState when it was started with other settings or its files are damaged.
 */
export const loadTrainingState = (dir: string, config: ModelConfig, settings: unknown) =>
  Effect.gen(function*() {
    yield* recoverFolder(dir)
    if (!(yield* pathExists(join(dir, stateFileName)))) return undefined
    const unusable = (why: string) =>
      new UnusableTrainingState({
        path: dir,
        message: `${dir} holds an unfinished training that cannot be continued: ${why}. ` +
          `Pass the flags it was started with to continue it, or delete the folder to start over.`
      })
    const text = yield* Effect.tryPromise({ try: () => readFile(join(dir, stateFileName), "utf8"), catch: fsError(join(dir, stateFileName), "read") })
    const decoded = decodeProgress(text)
    if (Result.isFailure(decoded)) return yield* unusable(`its ${stateFileName} does not decode`)
    const progress = decoded.success
    const differences = settingsDifferences(progress.settings, JSON.parse(JSON.stringify(settings)))
    if (differences.length > 0) return yield* unusable(`it was started with other settings (${differences.join(", ")})`)
    const file = yield* readSafetensors(join(dir, tensorsFileName)).pipe(Effect.mapError(() => unusable(`its ${tensorsFileName} cannot be read`)))
    const saved: Array<NamedTensor> = [...file].map(([name, t]) => ({ name, shape: t.shape, data: t.data }))
    // Fresh weights only serve as the shapes the saved tensors must have.
    const reference = initParams(config, 0)
    const weights = paramTensors(config, reference)
    const restored = (["w", "m", "v"] as const).map((prefix) => restoreWeightShaped(config, weights, saved, prefix, "tensor"))
    disposeParams(config, reference)
    const problem = restored.find((r) => "problem" in r)
    if (problem !== undefined && "problem" in problem) {
      tf.dispose(restored.flatMap((r) => ("tensors" in r ? r.tensors : [])))
      return yield* unusable(problem.problem)
    }
    const [w, m, v] = restored.map((r) => ("tensors" in r ? r.tensors : []))
    const state: BaseTrainingState = { step: progress.step, params: paramsFrom(config, w), optimizer: { step: progress.optimizerStep, m, v } }
    return { state, tokens: progress.tokens }
  })

/** Deletes the state once the training it belongs to has saved its result. */
export const removeTrainingState = (dir: string) =>
  Effect.tryPromise({ try: () => rm(dir, { recursive: true, force: true }), catch: fsError(dir, "remove") })
