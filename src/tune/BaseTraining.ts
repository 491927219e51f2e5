/**
 * The recipe that trains simmer's bundled base model from scratch: a small Llama-style
 * character model on a seeded mix of built-in tasks (by default arith, program, general; `--tasks` picks others).
 *
 * Every step draws fresh examples of one task (so a batch is as long as that task's examples,
 * not the longest task's): which task and which examples are a function of (seed, step) alone,
 * so a run is reproducible and needs no data state beyond the step number.
 */
import { Effect } from "effect"
import { makeCharTokenizer } from "../io/CharTokenizer.ts"
import type { TokenBatch } from "../model/Gradients.ts"
import { type ModelConfig, uniformConfig } from "../model/ModelConfig.ts"
import { initParams, type Params, paramTensors } from "../model/Params.ts"
import { Rng } from "../model/Rng.ts"
import { ALPHABET } from "../tasks/Alphabet.ts"
import { builtinTask } from "../tasks/Builtin.ts"
import { encodeExample } from "../tasks/Encode.ts"
import { type Task, type TaskName, taskNames } from "../tasks/Task.ts"
import { type AdamWState, defaultAdamW, initAdamW } from "./AdamW.ts"
import { buildBatch } from "./Batches.ts"
import { type LrSchedule, warmupCosine } from "./Schedule.ts"
import { applyUpdate, type StepReport } from "./Trainer.ts"

/** A value per task that base training trains on. */
export type BaseTaskTable<A> = Readonly<Partial<Record<TaskName, A>>>

export interface BaseRecipe {
  readonly seed: number
  readonly steps: number
  /** Sequences per step of each task in `mix`: program examples are a quarter as long, so its batches hold more. */
  readonly batchSizes: BaseTaskTable<number>
  readonly peakLr: number
  readonly weightDecay: number
  readonly maxSeqLen: number
  /** The tasks trained on, each with the relative frequency of its batches. */
  readonly mix: BaseTaskTable<number>
  readonly hiddenSize: number
  readonly numLayers: number
  readonly numHeads: number
  readonly numKeyValueHeads: number
  readonly intermediateSize: number
}

/** Sequences per step of a task with examples about as long as arith's. */
export const defaultBatchSize = 32
/** Sequences per step of program, whose examples are a quarter as long. */
export const defaultProgramBatchSize = 96

export const defaultBaseRecipe: BaseRecipe = {
  seed: 1,
  steps: 4000,
  batchSizes: { arith: defaultBatchSize, program: defaultProgramBatchSize, general: defaultBatchSize },
  peakLr: 3e-3,
  weightDecay: 0.1,
  maxSeqLen: 128,
  mix: { arith: 0.6, program: 0.3, general: 0.1 },
  hiddenSize: 128,
  numLayers: 4,
  numHeads: 4,
  numKeyValueHeads: 2,
  intermediateSize: 512
}

export const baseTokenizer = () => makeCharTokenizer(ALPHABET)

export const baseModelConfig = (recipe: BaseRecipe): ModelConfig =>
  uniformConfig({
    architecture: "llama",
    vocabSize: baseTokenizer().vocabSize,
    hiddenSize: recipe.hiddenSize,
    headDim: recipe.hiddenSize / recipe.numHeads,
    rmsNormEps: 1e-5,
    ropeTheta: 10000,
    maxPositionEmbeddings: recipe.maxSeqLen,
    tieWordEmbeddings: false,
    qkvBias: false,
    outputBias: false,
    mlpBias: false
  }, {
    numLayers: recipe.numLayers,
    intermediateSize: recipe.intermediateSize,
    numHeads: recipe.numHeads,
    numKeyValueHeads: recipe.numKeyValueHeads
  })

/** A mix as `--tasks` writes it: `arith=0.6,program=0.3,general=0.1`. */
export const formatTaskMix = (mix: BaseTaskTable<number>): string =>
  Object.entries(mix).map(([task, weight]) => `${task}=${weight}`).join(",")

/**
 * The mix `--tasks` names: built-in tasks separated by commas, each with an optional
 * `=weight` (default 1), or why it is not one. `all` stands for every built-in task not named
 * before it (`arith=2,all` trains on every skill, arith twice as often).
 */
export const parseTaskMix = (text: string): BaseTaskTable<number> | { readonly problem: string } => {
  const mix: Partial<Record<TaskName, number>> = {}
  for (const item of text.split(",").map((part) => part.trim()).filter((part) => part !== "")) {
    const [name, weightText, ...rest] = item.split("=")
    const weight = weightText === undefined ? 1 : Number(weightText)
    if (name !== "all" && !(taskNames as ReadonlyArray<string>).includes(name)) return { problem: `${name} is not a built-in task (${taskNames.join(", ")}) or all` }
    if (rest.length > 0 || !Number.isFinite(weight) || weight <= 0) return { problem: `the weight of ${name} must be a number above 0, got ${weightText}` }
    if (name === "all") {
      for (const task of taskNames) if (!(task in mix)) mix[task] = weight
      continue
    }
    if (name in mix) return { problem: `${name} is named twice` }
    mix[name as TaskName] = weight
  }
  return Object.keys(mix).length === 0 ? { problem: "name at least one task" } : mix
}

/** The tasks of a recipe's mix, in its order. */
export const mixTasks = (recipe: BaseRecipe): Array<TaskName> => Object.keys(recipe.mix) as Array<TaskName>

/** Built-in tasks with their default knobs and the given seed (by default those of the bundled model's mix). */
export const baseTasks = (seed: number, tasks: ReadonlyArray<TaskName> = mixTasks(defaultBaseRecipe)): BaseTaskTable<Task<object>> =>
  Object.fromEntries(tasks.map((task) => [task, builtinTask({ task, seed })]))

/** Which task step `step` trains on, and its batch (fresh train examples, never repeated). */
export const baseBatch = (
  recipe: BaseRecipe,
  tasks: BaseTaskTable<Task<object>>,
  step: number
): { task: TaskName; batch: TokenBatch } => {
  const tokenizer = baseTokenizer()
  const names = mixTasks(recipe)
  const weight = (name: TaskName) => recipe.mix[name] ?? 0
  const total = names.reduce((sum, name) => sum + weight(name), 0)
  let u = Rng.seeded(recipe.seed * 1_000_003 + step).uniform() * total
  const task = names.find((name) => (u -= weight(name)) < 0) ?? names[names.length - 1]
  // Example indices step*B.. are unique per step, so no example is seen twice.
  const size = recipe.batchSizes[task]!
  const examples = tasks[task]!.take("train", size, step * size)
  const batch = buildBatch(examples.map((e) => encodeExample(tokenizer, e)), recipe.maxSeqLen, tokenizer.padId, task !== "general")
  return { task, batch }
}

export interface BaseTrainingState {
  readonly step: number
  readonly params: Params
  readonly optimizer: AdamWState
}

/** A fresh optimizer on freshly initialised weights, or on `from` (weights to continue training). */
export const initBaseTraining = (recipe: BaseRecipe, from?: Params): BaseTrainingState => {
  const config = baseModelConfig(recipe)
  const params = from ?? initParams(config, recipe.seed)
  return { step: 0, params, optimizer: initAdamW(paramTensors(config, params)) }
}

export const baseSchedule = (recipe: BaseRecipe): LrSchedule => warmupCosine(recipe.peakLr, recipe.steps)

/** One step of base training. */
export const baseTrainingStep = (
  recipe: BaseRecipe,
  tasks: BaseTaskTable<Task<object>>,
  state: BaseTrainingState
) =>
  Effect.gen(function*() {
    const { task, batch } = baseBatch(recipe, tasks, state.step)
    const update = yield* applyUpdate(baseModelConfig(recipe), state.params, state.optimizer, [batch], {
      schedule: baseSchedule(recipe),
      optimizer: { ...defaultAdamW, beta2: 0.99, weightDecay: recipe.weightDecay },
      maxGradNorm: 1
    })
    const report: StepReport & { task: TaskName; tokens: number } = {
      ...update.report,
      task,
      tokens: batch.batchSize * batch.seqLen
    }
    return { state: { step: state.step + 1, params: update.params, optimizer: update.optimizer }, report }
  })
