/**
 * Finding a checkpoint folder and reading what its config.json describes, without any weights:
 * every command opens a checkpoint through here first, so each mistake (no folder, a file, no
 * config.json, the wrong kind of model) has one message.
 */
import { readdir, stat } from "node:fs/promises"
import { join } from "node:path"
import { Effect } from "effect"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { CheckpointNotFound, errnoCode, type FileSystemError, fsError, type InvalidConfig, type UnsupportedDtype, UnsupportedModel } from "./Errors.ts"
import { architectureClass, type HfConfig, type ModelKind, modelKind, readHfConfig, toModelConfig } from "./HfConfig.ts"
import { configFileName } from "./CheckpointLayout.ts"

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
