/**
 * What a plan's text cannot tell: whether the model folder and data files it names exist, and
 * whether its target can be reached by removing the units it names (heads alone cannot take a
 * model to 80% of its parameters when everything but one key/value group per layer is 90%),
 * and whether each model's tokenizer stays within the vocabulary the model can embed.
 * `simmer plan check` runs these with the schema checks, so a plan that says "valid" can run.
 *
 * The checks read the raw document and use each key only when it is valid on its own, so they
 * are reported together with the plan's other problems. Relative paths are read from `folder`
 * (the plan's folder), as the run reads them. Only config.json and tokenizers are read, never the weights.
 */
import { stat } from "node:fs/promises"
import { isAbsolute, join, resolve } from "node:path"
import { Effect, Result, Schema } from "effect"
import { listCheckpointFolder } from "../io/CheckpointFolder.ts"
import { configFileName, singleWeightsFileName, weightsIndexFileName } from "../io/CheckpointLayout.ts"
import { architectureClass, modelKind, readHfConfig, toModelConfig } from "../io/HfConfig.ts"
import type { Problem } from "../io/SchemaProblems.ts"
import { loadHubDataset } from "../hub/HubDataset.ts"
import { hubIdUnlessLocal } from "../hub/HubId.ts"
import { checkpointFolder } from "../hub/HubModel.ts"
import { HubDatasetRef } from "../services/Datasets.ts"
import { loadTokenizer } from "../io/Tokenizer.ts"
import { type AdapterTarget, adapterTargets, targetShape } from "../model/Adapters.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { unreachableShare } from "../prune/ParameterShare.ts"
import { rewardConfigProblem } from "../reward/RewardCheckpoint.ts"
import { unitCounts } from "../prune/Select.ts"
import { bundledModelMeant, isRecord, rawUnits, Target } from "./Plan.ts"

const decodeHubDatasetRef = Schema.decodeUnknownResult(HubDatasetRef)

const decodeTarget = Schema.decodeUnknownResult(Target)

/** Where a relative path was looked for, when it was relative. */
const readFrom = (written: string, folder: string) => (isAbsolute(written) ? "" : ` (relative paths are read from the plan's folder, ${folder})`)

type Kind = "file" | "folder" | "missing"

const kindOf = (path: string) =>
  Effect.promise(() => stat(path).then((s): Kind => (s.isDirectory() ? "folder" : "file"), (): Kind => "missing"))

/**
 * Why a checkpoint's tokenizer does not fit its model: it cannot be read, or it has ids the
 * model's embedding has no row for (the run would fail on the first text that reaches them).
 */
const tokenizerProblem = Effect.fnUntraced(function*(dir: string, vocabSize: number, role: string) {
  const tokenizer = yield* loadTokenizer(dir).pipe(Effect.result)
  if (Result.isFailure(tokenizer)) return tokenizer.failure.message
  return tokenizer.success.vocabSize > vocabSize
    ? `${join(dir, "tokenizer.json")} has ids up to ${tokenizer.success.vocabSize - 1}, beyond the ${vocabSize}-token vocabulary of ` +
      `${role} (vocab_size in ${join(dir, configFileName)}): text that reaches them cannot be embedded`
    : undefined
})

/** The model's config when the folder is a checkpoint a run can use, else the problems with it. */
const checkModel = Effect.fnUntraced(function*(written: string, dir: string, folder: string, weightsHere = true) {
  const problem = (message: string) => ({ config: undefined, problems: [{ path: ["model"], message }] })
  const entries = yield* listCheckpointFolder(dir).pipe(Effect.result)
  if (Result.isFailure(entries)) {
    const kind = yield* kindOf(dir)
    const meant = bundledModelMeant(written)
    return problem(
      kind === "file"
        ? `${dir} is a file, not a checkpoint folder`
        : `${dir} does not exist${meant !== undefined ? `; did you mean ${meant}, the bundled model?` : readFrom(written, folder)}`
    )
  }
  const hfConfig = yield* readHfConfig(join(dir, configFileName)).pipe(Effect.result)
  if (Result.isFailure(hfConfig)) return problem(hfConfig.failure.message)
  const missing = [
    ...(!weightsHere || entries.success.includes(singleWeightsFileName) || entries.success.includes(weightsIndexFileName)
      ? []
      : [`no weights (${singleWeightsFileName} or ${weightsIndexFileName})`]),
    ...(entries.success.includes("tokenizer.json") ? [] : ["no tokenizer.json (a run reads its data with the model's tokenizer)"])
  ]
  if (modelKind(hfConfig.success) !== "causal-lm") {
    return problem(`${dir} is a reward model (${architectureClass(hfConfig.success)}), not a causal LM to compress; name it under reward:`)
  }
  const config = toModelConfig(hfConfig.success)
  if (missing.length > 0) return { config, problems: [{ path: ["model"], message: `${dir} has ${missing.join(" and ")}` }] }
  const tokenizer = yield* tokenizerProblem(dir, config.vocabSize, "the model")
  return { config, problems: tokenizer !== undefined ? [{ path: ["model"], message: tokenizer }] : [] }
})

/**
 * The folder a checkpoint the plan names is read from: a local path, or for a Hub id its config
 * and tokenizer fetched into the cache (the weights come when the run starts; the repository's
 * listing already showed that it has safetensors).
 */
const locate = (written: string, folder: string) =>
  checkpointFolder(written, folder, { weights: false }).pipe(
    Effect.match({ onFailure: (e) => ({ problem: e.message }), onSuccess: (dir) => ({ dir, hub: hubIdUnlessLocal(written, folder) !== undefined }) })
  )

/** Every dataset reference under data (a mapping, one per entry of a list), with its path in the document. */
const dataEntries = (data: unknown): Array<{ path: Array<PropertyKey>; entry: Record<string, unknown> }> => {
  if (!isRecord(data)) return []
  return Object.entries(data).flatMap(([key, value]) =>
    (Array.isArray(value) ? value.map((v, i) => ({ v, path: ["data", key, i] })) : [{ v: value, path: ["data", key] }])
      .flatMap(({ v, path }) => (isRecord(v) ? [{ path, entry: v }] : []))
  )
}

/** Every `{ hub: ... }` dataset reference under data that is valid on its own, with its path in the document. */
const hubDatasets = (data: unknown): Array<{ path: Array<PropertyKey>; ref: HubDatasetRef }> =>
  dataEntries(data).flatMap(({ path, entry }) => {
    const ref = "hub" in entry ? decodeHubDatasetRef(entry) : undefined
    return ref !== undefined && Result.isSuccess(ref) ? [{ path, ref: ref.success }] : []
  })

/** The problems of a checkpoint folder a plan names besides its model: a reward model, or a distillation teacher. */
const checkOtherModel = Effect.fnUntraced(function*(
  path: Array<PropertyKey>,
  written: string,
  folder: string,
  role: "reward" | "teacher"
) {
  const located = yield* locate(written, folder)
  if ("problem" in located) return [{ path, message: located.problem }]
  const { dir } = located
  const hfConfig = yield* readHfConfig(join(dir, configFileName)).pipe(Effect.result)
  if (Result.isFailure(hfConfig)) {
    const kind = yield* kindOf(dir)
    const message = kind === "missing" ? `${dir} does not exist${readFrom(written, folder)}` : hfConfig.failure.message
    return [{ path, message }]
  }
  if (role === "reward") {
    const problem = rewardConfigProblem(hfConfig.success, join(dir, configFileName))
    if (problem !== undefined) return [{ path, message: problem.message }]
    if ((yield* kindOf(join(dir, "tokenizer.json"))) !== "file") {
      return [{ path, message: `${dir} has no tokenizer.json (a reward model reads the completions' text with its own)` }]
    }
    const tokenizer = yield* tokenizerProblem(dir, hfConfig.success.vocab_size, "the reward model")
    return tokenizer !== undefined ? [{ path, message: tokenizer }] : []
  }
  return modelKind(hfConfig.success) === "causal-lm"
    ? []
    : [{ path, message: `${dir} is a reward model (${architectureClass(hfConfig.success)}); a teacher must be a causal LM` }]
})

/** The plan's tuner entries, each with its path in the document. */
const rawTuners = (raw: Record<string, unknown>): Array<{ t: unknown; path: Array<PropertyKey> }> =>
  Array.isArray(raw.tuner) ? raw.tuner.map((t, i) => ({ t, path: ["tuner", i] })) : [{ t: raw.tuner, path: ["tuner"] }]

/** Reward models (`reward: [{ model }]`) and distillation teachers (`tuner: { teacher }`) the plan names. */
const otherModels = (raw: Record<string, unknown>): Array<{ path: Array<PropertyKey>; written: string; role: "reward" | "teacher" }> => [
  ...(Array.isArray(raw.reward) ? raw.reward : []).flatMap((r, i) =>
    isRecord(r) && typeof r.model === "string" && r.model !== "" ? [{ path: ["reward", i, "model"], written: r.model, role: "reward" as const }] : []),
  ...rawTuners(raw).flatMap(({ t, path }) =>
    isRecord(t) && typeof t.teacher === "string" && t.teacher !== "" ? [{ path: [...path, "teacher"], written: t.teacher, role: "teacher" as const }] : [])
]

/** Every `{ file: ... }` under data, with its path in the document. */
const dataFiles = (data: unknown): Array<{ path: Array<PropertyKey>; file: string }> =>
  dataEntries(data).flatMap(({ path, entry }) =>
    typeof entry.file === "string" && entry.file !== "" ? [{ path: [...path, "file"], file: entry.file }] : [])

/** Whether the target can be reached with the plan's units on this model. */
const targetProblems = (config: ModelConfig, raw: Record<string, unknown>): Array<Problem> => {
  const target = decodeTarget(raw.target)
  const units = rawUnits(raw)
  if (Result.isFailure(target) || units === undefined) return []
  if ("parameters" in target.success) {
    const unreachable = unreachableShare(config, units, target.success.parameters)
    return unreachable === undefined ? [] : [{ path: ["target", "parameters"], message: unreachable }]
  }
  const perLayer = target.success.perLayer
  return units.flatMap((unit) => {
    const wanted = perLayer[unit]
    const widest = Math.max(...unitCounts(config, unit))
    return wanted !== undefined && wanted >= widest
      ? [{ path: ["target", "perLayer", unit], message: `the model has at most ${widest} ${unit} per layer, so keeping ${wanted} prunes nothing` }]
      : []
  })
}

/** Adapters whose rank is not below the projections they adapt: such an update is not low-rank. */
const adapterProblems = (config: ModelConfig, raw: Record<string, unknown>): Array<Problem> =>
  rawTuners(raw).flatMap(({ t, path }) => {
    const adapter = isRecord(t) && isRecord(t.adapter) ? t.adapter : undefined
    if (adapter === undefined || typeof adapter.rank !== "number") return []
    const named = Array.isArray(adapter.targets) ? adapter.targets : adapterTargets
    const targets = named.filter((n): n is AdapterTarget => (adapterTargets as ReadonlyArray<unknown>).includes(n))
    const shapes = targets.flatMap((target) => config.layers.map((_, i) => ({ target, shape: targetShape(config, i, target) })))
    if (shapes.length === 0) return []
    const smallest = shapes.reduce((a, b) => (Math.min(...b.shape) < Math.min(...a.shape) ? b : a))
    const limit = Math.min(...smallest.shape)
    return adapter.rank <= limit ? [] : [{
      path: [...path, "adapter", "rank"],
      message: `rank ${adapter.rank} is above ${limit}, the smaller side of the ${smallest.target} projection ` +
        `(${smallest.shape[0]} × ${smallest.shape[1]}; hidden size ${config.hiddenSize}): a low-rank adapter's rank is at most ` +
        `the sizes of the projections it adapts`
    }]
  })

/**
 * The problems of a plan's inputs: model folder, data files, reachability of the target.
 * `raw` is the plan document as parsed; `bundledModel` is where `model: base` points.
 */
export const checkPlanInputs = (bundledModel: string) => (raw: Record<string, unknown>, folder: string): Effect.Effect<Array<Problem>> =>
  Effect.gen(function*() {
    const problems: Array<Problem> = []
    if (typeof raw.model === "string" && raw.model !== "") {
      const located = raw.model === "base" ? { dir: bundledModel, hub: false } : yield* locate(raw.model, folder)
      if ("problem" in located) problems.push({ path: ["model"], message: located.problem })
      else {
        const model = yield* checkModel(raw.model, located.dir, folder, !located.hub)
        problems.push(...model.problems)
        if (model.config !== undefined) problems.push(...targetProblems(model.config, raw), ...adapterProblems(model.config, raw))
      }
    }
    for (const { path, written, role } of otherModels(raw)) problems.push(...yield* checkOtherModel(path, written, folder, role))
    for (const { path, file } of dataFiles(raw.data)) {
      const absolute = resolve(folder, file)
      const kind = yield* kindOf(absolute)
      if (kind === "missing") problems.push({ path, message: `${absolute} does not exist${readFrom(file, folder)}` })
      if (kind === "folder") problems.push({ path, message: `${absolute} is a folder, not a JSONL file` })
    }
    // A Hub dataset is fetched and read: a wrong config, split or column shows now, not mid-run.
    for (const { path, ref } of hubDatasets(raw.data)) {
      const loaded = yield* loadHubDataset(ref).pipe(Effect.result)
      if (Result.isFailure(loaded)) problems.push({ path, message: loaded.failure.message })
    }
    return problems
  })
