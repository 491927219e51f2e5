/**
 * `npm run -s bench -- quality --suite skills [--base <checkpoint>]`: PTL's claim measured on many
 * skills, by default on the bundled models/skills. For each seed (1–3 by default) it prunes the given base model to 50% of its
 * non-embedding parameters, recovering on one skill's data only (`--tune`, arith by default, as
 * the paper recovers on math), and compares on every skill:
 *
 * - `ptl`: the demo's loop (its schedule, scorer, tuner and gates), calibrated on all skills;
 * - `prune-only`: the same pruning without tuning;
 * - `one-shot`: all of it at once, then as many tuning steps as PTL actually took;
 * - `scratch`: a model of half the base's width trained from scratch by `simmer train-base` on
 *   the skills, with the same total compute as the base's training plus PTL's tuning (or the
 *   checkpoint `--scratch` names; with the bundled base, models/skills-half: the same recipe and
 *   steps as the base, so less compute than PTL's, unless --base-steps asks for a matched one).
 *
 * It prints per-skill accuracy and retained share, mean and spread over seeds, and writes one
 * comparison page (`simmer report` over every seed's runs) to `<dir>/comparison.html`.
 */
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { stringify } from "yaml"
import { comparison, type ComparisonRow } from "../src/report/Comparison.ts"
import { countParams } from "../src/model/Params.ts"
import { baseModelConfig, defaultBaseRecipe } from "../src/tune/BaseTraining.ts"
import { intOption, listOption, machineInfo, type Options, progress, round } from "./common.ts"
import { demoPlan, eventsOf, oneShotRun, type PlanDocument, runOneShot, simmerStdout, stepsPerTuner, TARGET_NOT_REACHED, tunerOption } from "./quality.ts"
import { formatSeedSummary, type SeedResult, type StrategyResult, summariseSeeds } from "./seedSummary.ts"

/** The skills suite's base (models/README.md), and the same recipe at half its width. */
const bundledSkillsBase = fileURLToPath(new URL("../models/skills", import.meta.url))
const bundledSkillsHalf = fileURLToPath(new URL("../models/skills-half", import.meta.url))

/**
 * The graded skills the suite evaluates: every built-in one but `lookup`, which no model of this
 * size class has learnt yet (models/README.md).
 */
export const suiteSkills = ["arith", "program", "sort", "reverse", "count", "compare", "units"]

/** The mix the skills base was trained on (models/README.md), and the scratch model with it. */
export const skillsMix = "arith=2,program,sort,count,compare,reverse,units"

interface Shape {
  readonly hiddenSize: number
  readonly numLayers: number
  readonly numHeads: number
  readonly numKeyValueHeads: number
  readonly intermediateSize: number
}

/** The widths of a uniform Llama checkpoint, from `simmer inspect --json`. */
const shapeOf = async (checkpoint: string): Promise<Shape> => {
  const info = JSON.parse(await simmerStdout(["inspect", checkpoint, "--json"]))
  const layer = info.layers[0]
  return {
    hiddenSize: info.hidden_size,
    numLayers: info.num_hidden_layers,
    numHeads: layer.num_attention_heads,
    numKeyValueHeads: layer.num_key_value_heads,
    intermediateSize: layer.intermediate_size
  }
}

/** Half the width: hidden size, heads, key/value heads (at least one) and MLP halved, as deep. */
export const halfWidth = (shape: Shape): Shape => ({
  hiddenSize: shape.hiddenSize / 2,
  numLayers: shape.numLayers,
  numHeads: Math.max(1, shape.numHeads / 2),
  numKeyValueHeads: Math.max(1, shape.numKeyValueHeads / 2),
  intermediateSize: shape.intermediateSize / 2
})

const parametersOf = (shape: Shape) => countParams(baseModelConfig({ ...defaultBaseRecipe, ...shape }))

/**
 * Steps of the half-width model with the compute of `baseSteps` steps of the base plus PTL's
 * tuning steps. A step costs about 6 × parameters × tokens and train-base's steps hold the same
 * tokens at either width; PTL's steps are counted at the unpruned base's size (an upper bound:
 * the model shrinks along the way).
 */
export const computeMatchedSteps = (baseSteps: number, ptlSteps: number, baseParameters: number, halfParameters: number): number =>
  Math.ceil(((baseSteps + ptlSteps) * baseParameters) / halfParameters)

/** The plan's keys that `--scorer`, `--allocation` and `--iterations` replace (the demo's when not given). */
interface PlanOverrides {
  readonly scorer?: string
  readonly allocation?: string
  readonly iterations?: number
}

const planOverrides = (options: Options): PlanOverrides => {
  const allocation = options.get("allocation")
  if (allocation !== undefined && allocation !== "uniform" && allocation !== "global") {
    throw new Error(`quality --suite skills: --allocation must be uniform or global, got "${allocation}"`)
  }
  const scorer = options.get("scorer")
  return {
    ...(scorer === undefined ? {} : { scorer }),
    ...(allocation === undefined ? {} : { allocation }),
    ...(options.has("iterations") ? { iterations: intOption(options, "iterations", 0) } : {})
  }
}

/** The plan of one seed: the demo's loop on `base`, tuned on one skill, calibrated and evaluated on all of them. */
const seedPlan = (
  demo: PlanDocument,
  base: string,
  seed: number,
  skills: ReadonlyArray<string>,
  tune: string,
  examples: number,
  gates: boolean,
  overrides: PlanOverrides
): PlanDocument => {
  const data = demo.data as Record<string, unknown>
  const ofSeed = (task: string) => ({ task, seed })
  return {
    ...demo,
    model: base,
    data: {
      ...data,
      tune: [ofSeed(tune)],
      calibration: skills.map(ofSeed),
      general: ofSeed("general"),
      evaluate: skills.map(ofSeed),
      evaluationExamples: examples
    },
    baselines: ["prune-only"],
    // Without gates PTL goes all the way to the target whatever the evaluations say.
    ...(gates ? {} : { gates: {} }),
    ...overrides,
    seed
  }
}

const resultOf = (row: ComparisonRow, skills: ReadonlyArray<string>): StrategyResult => ({
  share: row.share,
  accuracy: Object.fromEntries(skills.map((s) => [s, row.metrics[s] ?? 0]))
})

/** Accuracy of a checkpoint on every skill's test split of `seed`, by `simmer eval`. */
const evaluateCheckpoint = async (checkpoint: string, seed: number, skills: ReadonlyArray<string>, examples: number, backend: ReadonlyArray<string>) => {
  const accuracy: Record<string, number> = {}
  for (const task of skills) {
    const out = JSON.parse(await simmerStdout(["eval", checkpoint, "--task", task, "--seed", String(seed), "--examples", String(examples), "--json", ...backend]))
    accuracy[task] = out.accuracy ?? 0
  }
  return accuracy
}

export const qualitySkills = async (options: Options) => {
  const base = options.get("base") ?? bundledSkillsBase
  const quick = options.has("quick")
  const dir = resolve(options.get("dir") ?? join(mkdtempSync(join(tmpdir(), "simmer-skills-")), "skills"))
  const backend = ["--backend", options.get("backend") ?? "wasm"]
  const seeds = listOption(options, "seeds", ["1", "2", "3"]).map(Number)
  const skills = listOption(options, "skills", suiteSkills)
  const tune = options.get("tune") ?? "arith"
  if (!skills.includes(tune)) throw new Error(`quality --suite skills: --tune ${tune} is not among the skills (${skills.join(", ")})`)
  const examples = intOption(options, "examples", quick ? 32 : 200)
  const tunerName = tunerOption(options)
  const gatesOption = options.get("gates") ?? "on"
  if (gatesOption !== "on" && gatesOption !== "off") throw new Error(`quality --suite skills: --gates must be on or off, got "${gatesOption}"`)
  const gates = gatesOption === "on"
  const baseSteps = options.has("base-steps") ? intOption(options, "base-steps", 0) : undefined
  const scratchStepsGiven = options.has("scratch-steps") ? intOption(options, "scratch-steps", 0) : undefined
  // The bundled base comes with its half-width twin, trained by the same recipe for as many steps.
  const scratchGiven = options.get("scratch") ??
    (options.has("base") || baseSteps !== undefined || scratchStepsGiven !== undefined ? undefined : bundledSkillsHalf)
  mkdirSync(dir, { recursive: true })

  const baseShape = await shapeOf(resolve(base))
  const scratchShape = halfWidth(baseShape)
  const baseParameters = parametersOf(baseShape)
  const scratchParameters = parametersOf(scratchShape)
  const demo = demoPlan(quick, tunerName)
  const overrides = planOverrides(options)
  const results: Array<SeedResult> = []
  const runs: Array<string> = []
  const spend: Array<{ seed: number; ptlSteps: ReadonlyArray<number>; scratchSteps?: number }> = []
  const started = performance.now()
  for (const seed of seeds) {
    const run = join(dir, `seed-${seed}`)
    const plan = seedPlan(demo, resolve(base), seed, skills, tune, examples, gates, overrides)
    writeFileSync(`${run}.yaml`, stringify(plan))
    progress(`quality --suite skills: seed ${seed}: simmer run ${run}.yaml (PTL and prune-only)`)
    // PTL stopped by its gates short of the target is a result to report (exit code 3).
    await simmerStdout(["run", `${run}.yaml`, "--out", run, "--json", ...backend], [0, TARGET_NOT_REACHED])
    const rows = comparison(eventsOf(run))
    const ptlSteps = stepsPerTuner(run, plan)
    progress(`quality --suite skills: seed ${seed}: PTL tuned for ${ptlSteps.join(" + ")} steps; one-shot with as many`)
    const oneShot = await runOneShot(run, ptlSteps, backend)
    runs.push(run, oneShotRun(run, ptlSteps))
    const strategies: Record<string, StrategyResult> = {}
    for (const row of [...rows, oneShot]) strategies[row.strategy] = resultOf(row, skills)
    // PTL stopped by its gates above the target: one-shot to PTL's own size as well, so that the
    // two also meet at the same size and spend.
    const ptlShare = rows.find((r) => r.strategy === "ptl")?.share
    if (ptlShare !== undefined && ptlShare > oneShot.share + 0.01) {
      progress(`quality --suite skills: seed ${seed}: PTL stopped at ${(ptlShare * 100).toFixed(1)}%; one-shot to that size too`)
      const sameSize = await runOneShot(run, ptlSteps, backend, ptlShare)
      runs.push(oneShotRun(run, ptlSteps, ptlShare))
      strategies["one-shot@ptl"] = resultOf(sameSize, skills)
    }

    const totalPtlSteps = ptlSteps.reduce((a, b) => a + b, 0)
    const scratchSteps = scratchStepsGiven ??
      (baseSteps === undefined ? undefined : computeMatchedSteps(baseSteps, totalPtlSteps, baseParameters.total, scratchParameters.total))
    const scratch = scratchGiven !== undefined ? resolve(scratchGiven) : scratchSteps === undefined ? undefined : join(dir, `scratch-seed-${seed}`)
    if (scratch !== undefined && scratchGiven === undefined && !existsSync(join(scratch, "config.json"))) {
      progress(`quality --suite skills: seed ${seed}: training the half-width model from scratch for ${scratchSteps} steps`)
      await simmerStdout([
        "train-base", "--out", scratch, "--steps", String(scratchSteps), "--seed", String(seed), "--tasks", options.get("tasks") ?? skillsMix,
        "--hidden", String(scratchShape.hiddenSize), "--layers", String(scratchShape.numLayers), "--heads", String(scratchShape.numHeads),
        "--kv-heads", String(scratchShape.numKeyValueHeads), "--intermediate", String(scratchShape.intermediateSize),
        "--eval-every", "0", "--eval-examples", "1", "--json", ...backend
      ])
    }
    if (scratch !== undefined) {
      progress(`quality --suite skills: seed ${seed}: evaluating the half-width model ${scratch}`)
      strategies.scratch = {
        share: scratchParameters.nonEmbedding / baseParameters.nonEmbedding,
        accuracy: await evaluateCheckpoint(scratch, seed, skills, examples, backend)
      }
    }
    results.push({ seed, strategies })
    spend.push({ seed, ptlSteps, ...(scratchSteps !== undefined && scratchGiven === undefined ? { scratchSteps } : {}) })
  }

  const page = join(dir, "comparison.html")
  await simmerStdout(["report", runs[0], ...runs.slice(1).flatMap((r) => ["--compare", r]), "--output", page])
  const summaries = summariseSeeds(results, skills, [tune])
  progress(`\n${formatSeedSummary(summaries, skills)}\n`)
  const ptl = summaries.find((s) => s.strategy === "ptl")
  const oneShot = summaries.find((s) => s.strategy === "one-shot")
  const oneShotSameSize = summaries.find((s) => s.strategy === "one-shot@ptl")
  return {
    benchmark: "quality",
    suite: "skills",
    machine: machineInfo(),
    base: resolve(base),
    baseParameters,
    scratch: scratchGiven !== undefined
      ? { checkpoint: resolve(scratchGiven), parameters: scratchParameters }
      : baseSteps !== undefined || scratchStepsGiven !== undefined
      ? { shape: scratchShape, parameters: scratchParameters, matchedTo: scratchStepsGiven === undefined ? { baseSteps } : "--scratch-steps" }
      : "not run: give --scratch <checkpoint>, --base-steps N (the base's training steps) or --scratch-steps N",
    tuner: tunerName ?? "sft (the demo's)",
    gates: gates ? "the demo's" : "off",
    scorer: overrides.scorer ?? "the demo's (wanda)",
    allocation: overrides.allocation ?? "the demo's (uniform)",
    iterations: overrides.iterations ?? demo.iterations,
    tunedOn: tune,
    seeds,
    examples,
    spend,
    dir,
    page,
    seconds: round((performance.now() - started) / 1000),
    summaries,
    // The targets: ≥ 95% of the base on every skill at ≤ 50% of the non-embedding
    // parameters in every seed, and ≥ 10 points over one-shot (same spend) on the untrained skills.
    target: ptl === undefined || oneShot === undefined ? undefined : {
      retains95PercentEverywhere: ptl.lowestRetained >= 0.95,
      atMost50Percent: ptl.share.max <= 0.5,
      untrainedPointsOverOneShot: round((ptl.meanUntrained.mean - oneShot.meanUntrained.mean) * 100, 1),
      ...(oneShotSameSize === undefined ? {} : {
        untrainedPointsOverOneShotAtPtlSize: round((ptl.meanUntrained.mean - oneShotSameSize.meanUntrained.mean) * 100, 1)
      }),
      met: ptl.lowestRetained >= 0.95 && ptl.share.max <= 0.5 && ptl.meanUntrained.mean - oneShot.meanUntrained.mean >= 0.1
    }
  }
}

