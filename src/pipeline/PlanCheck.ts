/**
 * What a plan's text cannot tell: whether the model folder and data files it names exist, and
 * whether its target can be reached by removing the units it names (heads alone cannot take a
 * model to 80% of its parameters when everything but one key/value group per layer is 90%).
 * `simmer plan check` runs these with the schema checks, so a plan that says "valid" can run.
 *
 * The checks read the raw document and use each key only when it is valid on its own, so they
 * are reported together with the plan's other problems. Relative paths are read from `folder`
 * (the plan's folder), as the run reads them. Only config.json is read, never the weights.
 */
import { stat } from "node:fs/promises"
import { isAbsolute, join, resolve } from "node:path"
import { Effect, Result, Schema } from "effect"
import { configFileName, listCheckpointFolder, singleWeightsFileName, weightsIndexFileName } from "../io/Checkpoint.ts"
import { architectureClass, modelKind, readHfConfig, toModelConfig } from "../io/HfConfig.ts"
import type { Problem } from "../io/SchemaProblems.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { unreachableShare } from "../prune/ParameterShare.ts"
import { rewardConfigProblem } from "../reward/RewardCheckpoint.ts"
import { unitCounts } from "../prune/Select.ts"
import { bundledModelMeant, isRecord, rawUnits, Target } from "./Plan.ts"

const decodeTarget = Schema.decodeUnknownResult(Target)

/** Where a relative path was looked for, when it was relative. */
const readFrom = (written: string, folder: string) => (isAbsolute(written) ? "" : ` (relative paths are read from the plan's folder, ${folder})`)

type Kind = "file" | "folder" | "missing"

const kindOf = (path: string) =>
  Effect.promise(() => stat(path).then((s): Kind => (s.isDirectory() ? "folder" : "file"), (): Kind => "missing"))

/** The model's config when the folder is a checkpoint a run can use, else the problems with it. */
const checkModel = Effect.fnUntraced(function*(written: string, dir: string, folder: string) {
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
    ...(entries.success.includes(singleWeightsFileName) || entries.success.includes(weightsIndexFileName)
      ? []
      : [`no weights (${singleWeightsFileName} or ${weightsIndexFileName})`]),
    ...(entries.success.includes("tokenizer.json") ? [] : ["no tokenizer.json (a run reads its data with the model's tokenizer)"])
  ]
  if (modelKind(hfConfig.success) !== "causal-lm") {
    return problem(`${dir} is a reward model (${architectureClass(hfConfig.success)}), not a causal LM to compress; name it under reward:`)
  }
  const config = toModelConfig(hfConfig.success)
  return { config, problems: missing.length > 0 ? [{ path: ["model"], message: `${dir} has ${missing.join(" and ")}` }] : [] }
})

/** The problems of a checkpoint folder a plan names besides its model: a reward model, or a distillation teacher. */
const checkOtherModel = Effect.fnUntraced(function*(
  path: Array<PropertyKey>,
  written: string,
  folder: string,
  role: "reward" | "teacher"
) {
  const dir = resolve(folder, written)
  const hfConfig = yield* readHfConfig(join(dir, configFileName)).pipe(Effect.result)
  if (Result.isFailure(hfConfig)) {
    const kind = yield* kindOf(dir)
    const message = kind === "missing" ? `${dir} does not exist${readFrom(written, folder)}` : hfConfig.failure.message
    return [{ path, message }]
  }
  if (role === "reward") {
    const problem = rewardConfigProblem(hfConfig.success, join(dir, configFileName))
    if (problem !== undefined) return [{ path, message: problem.message }]
    const tokenizer = yield* kindOf(join(dir, "tokenizer.json"))
    return tokenizer === "file" ? [] : [{ path, message: `${dir} has no tokenizer.json (a reward model reads the completions' text with its own)` }]
  }
  return modelKind(hfConfig.success) === "causal-lm"
    ? []
    : [{ path, message: `${dir} is a reward model (${architectureClass(hfConfig.success)}); a teacher must be a causal LM` }]
})

/** Reward models (`reward: [{ model }]`) and distillation teachers (`tuner: { teacher }`) the plan names. */
const otherModels = (raw: Record<string, unknown>): Array<{ path: Array<PropertyKey>; written: string; role: "reward" | "teacher" }> => [
  ...(Array.isArray(raw.reward) ? raw.reward : []).flatMap((r, i) =>
    isRecord(r) && typeof r.model === "string" && r.model !== "" ? [{ path: ["reward", i, "model"], written: r.model, role: "reward" as const }] : []),
  ...(Array.isArray(raw.tuner) ? raw.tuner.map((t, i) => ({ t, path: ["tuner", i] as Array<PropertyKey> })) : [{ t: raw.tuner, path: ["tuner"] }])
    .flatMap(({ t, path }) =>
      isRecord(t) && typeof t.teacher === "string" && t.teacher !== "" ? [{ path: [...path, "teacher"], written: t.teacher, role: "teacher" as const }] : [])
]

/** Every `{ file: ... }` under data, with its path in the document. */
const dataFiles = (data: unknown): Array<{ path: Array<PropertyKey>; file: string }> => {
  if (!isRecord(data)) return []
  return Object.entries(data).flatMap(([key, value]) =>
    (Array.isArray(value) ? value.map((v, i) => ({ v, path: ["data", key, i] })) : [{ v: value, path: ["data", key] }])
      .flatMap(({ v, path }) => (isRecord(v) && typeof v.file === "string" && v.file !== "" ? [{ path: [...path, "file"], file: v.file }] : []))
  )
}

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

/**
 * The problems of a plan's inputs: model folder, data files, reachability of the target.
 * `raw` is the plan document as parsed; `bundledModel` is where `model: base` points.
 */
export const checkPlanInputs = (bundledModel: string) => (raw: Record<string, unknown>, folder: string): Effect.Effect<Array<Problem>> =>
  Effect.gen(function*() {
    const problems: Array<Problem> = []
    if (typeof raw.model === "string" && raw.model !== "") {
      const dir = raw.model === "base" ? bundledModel : resolve(folder, raw.model)
      const model = yield* checkModel(raw.model, dir, folder)
      problems.push(...model.problems)
      if (model.config !== undefined) problems.push(...targetProblems(model.config, raw))
    }
    for (const { path, written, role } of otherModels(raw)) problems.push(...yield* checkOtherModel(path, written, folder, role))
    for (const { path, file } of dataFiles(raw.data)) {
      const absolute = resolve(folder, file)
      const kind = yield* kindOf(absolute)
      if (kind === "missing") problems.push({ path, message: `${absolute} does not exist${readFrom(file, folder)}` })
      if (kind === "folder") problems.push({ path, message: `${absolute} is a folder, not a JSONL file` })
    }
    return problems
  })
