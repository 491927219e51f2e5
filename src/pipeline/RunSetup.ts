/**
 * What a run needs before it loads a single weight, read and checked in one place: the
 * checkpoint's config (a causal LM, not a reward model) and tokenizer, every dataset the plan
 * names (files read and validated, the tuning data not empty, GRPO's rule rewards able to grade
 * it), and the plan's estimated peak memory with the evaluation batch and engine it counts. Preflight
 * (`simmer run`, `simmer plan check`, the daemon's submissions) checks it against the budget;
 * the run then starts from the same setup instead of reading it all again.
 */
import { join } from "node:path"
import { Effect } from "effect"
import type { InferenceEngine } from "../compute/Inference.ts"
import { expectKind, readCheckpointConfig } from "../io/CheckpointFolder.ts"
import { configFileName } from "../io/CheckpointLayout.ts"
import { loadTokenizer, type Tokenizer } from "../io/Tokenizer.ts"
import { type Footprint, formatBytes, MemoryBudgetExceeded } from "../model/Footprint.ts"
import type { ModelConfig } from "../model/ModelConfig.ts"
import { checkRuleFits } from "../reward/RuleReward.ts"
import { type Dataset, Datasets } from "../services/Datasets.ts"
import { NoTrainingData } from "../tune/TuningData.ts"
import type { Plan } from "./Plan.ts"
import { plannedTuners } from "./Plan.ts"
import { largestTensor, planFootprint, planMemoryAdvice } from "./PlanFootprint.ts"
import { DeviceMemory } from "../services/DeviceMemory.ts"
import { tunerFor } from "../tune/Tuners.ts"

/** The plan's tuners, built from its `tuner:` entries. */
export const planTuners = (plan: Plan) => plannedTuners(plan).map((config) => ({ tuner: tunerFor(config), steps: config.steps }))

/** The most sequences a run's evaluation decodes at once (it lowers that to what fits). */
const runEvaluationBatchSize = 64

/**
 * The sequences a plan's evaluation decodes at once, as its memory estimate counts them: 64, or
 * the examples per dataset when there are fewer (no batch is larger than its dataset).
 */
const planEvaluationBatchSize = (plan: Plan) => Math.min(runEvaluationBatchSize, plan.data.evaluationExamples)

/** Besides the plan and the model's shape, what decides a run's memory estimate. */
export interface RunMemoryContext {
  /** The engine its evaluation decodes graded datasets with. */
  readonly inference: InferenceEngine
  /** The budget's kind (DeviceMemory's): host memory also holds what the run allocates outside tfjs. */
  readonly budget: string
}

/** A plan's estimated peak memory on a model of `shape`: what a run reserves, and preflight and the daemon check. */
export const runFootprint = (plan: Plan, shape: ModelConfig, context: RunMemoryContext, evaluationBatchSize = planEvaluationBatchSize(plan)) =>
  planFootprint(
    plan,
    shape,
    planTuners(plan).map((t) => t.tuner),
    evaluationBatchSize,
    context.budget === "host memory" ? { inference: context.inference } : undefined
  )

export interface RunSetup {
  readonly plan: Plan
  /** The checkpoint folder the plan's `model` names, resolved. */
  readonly modelPath: string
  readonly config: ModelConfig
  readonly tokenizer: Tokenizer
  readonly data: {
    readonly tune: ReadonlyArray<Dataset>
    readonly calibration: ReadonlyArray<Dataset>
    readonly evaluate: ReadonlyArray<Dataset>
    readonly general: Dataset
  }
  /** The most sequences evaluation decodes at once, as the footprint counts them. */
  readonly evaluationBatchSize: number
  /** The engine evaluation decodes with, as the footprint counts it. */
  readonly inference: InferenceEngine
  /** The run's estimated peak memory: what it reserves, and preflight and the daemon check. */
  readonly footprint: Footprint
}

/** Holds the setup's estimated peak in the memory budget for the caller's scope; refused, with what to change, when it cannot fit. */
export const reserveRunMemory = (setup: RunSetup) =>
  Effect.gen(function*() {
    const memory = yield* DeviceMemory
    const largest = largestTensor(setup.plan, setup.config)
    if (largest.bytes > memory.bindingLimitBytes) {
      return yield* new MemoryBudgetExceeded({
        what: `This plan on ${setup.modelPath}`,
        requiredBytes: largest.bytes,
        budgetBytes: memory.bindingLimitBytes,
        availableBytes: memory.bindingLimitBytes,
        message: `This plan on ${setup.modelPath} makes a tensor of ${formatBytes(largest.bytes)}, ${largest.what}, but the GPU's ` +
          `kernels bind at most ${formatBytes(memory.bindingLimitBytes)} at a time, and simmer does not yet split tensors across ` +
          "bindings. Lower tuner.batchSize or tuner.maxSeqLen, or use --backend wasm or cpu for this model."
      })
    }
    yield* memory.reserve(`This plan on ${setup.modelPath}`, setup.footprint, { advice: planMemoryAdvice(setup.footprint) })
  })

export const readRunSetup = (plan: Plan, modelPath: string, inference: InferenceEngine, evaluationBatchSize = planEvaluationBatchSize(plan)) =>
  Effect.gen(function*() {
    const memory = yield* DeviceMemory
    const { config, hfConfig } = yield* readCheckpointConfig(modelPath)
    yield* expectKind(join(modelPath, configFileName), hfConfig, "causal-lm")
    const tokenizer = yield* loadTokenizer(modelPath)
    const datasets = yield* Datasets
    const open = (refs: ReadonlyArray<Plan["data"]["general"]>) => Effect.forEach(refs, (ref) => datasets.open(ref))
    const data = {
      tune: yield* open(plan.data.tune),
      calibration: yield* open(plan.data.calibration),
      evaluate: yield* open(plan.data.evaluate),
      general: yield* datasets.open(plan.data.general)
    }
    const empty = data.tune.filter((d) => d.size("train") === 0)
    if (empty.length === data.tune.length) {
      return yield* new NoTrainingData({
        datasets: empty.map((d) => d.name),
        message: `There is nothing to tune on: the training split of ${empty.map((d) => d.name).join(", ")} is empty ` +
          "(JSONL files give 80% of their lines, chosen by prompt hash, to it). Use a larger file, or `splitBy: none`."
      })
    }
    // GRPO draws its prompts from the tuning data: every rule reward must be able to grade them.
    const rules = planTuners(plan).some((t) => t.tuner.kind === "grpo") ? (plan.reward ?? []).flatMap((r) => ("rule" in r ? [r.rule] : [])) : []
    for (const rule of rules) {
      const misfit = checkRuleFits(rule, data.tune)
      if (misfit !== undefined) return yield* misfit
    }
    return {
      plan,
      modelPath,
      config,
      tokenizer,
      data,
      evaluationBatchSize,
      inference,
      footprint: runFootprint(plan, config, { inference, budget: memory.kind }, evaluationBatchSize)
    } satisfies RunSetup
  })
