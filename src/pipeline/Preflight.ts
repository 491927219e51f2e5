/**
 * Everything a run needs, checked before anything is created for it (a run folder, a queued
 * job): the checkpoint's config (a causal LM, not a reward model) and tokenizer, every dataset (files read and validated, the
 * tuning data not empty), GRPO's rule rewards against the data they grade, and the plan's memory
 * estimate against the budget. A plan that passes
 * can start; one that fails gets the typed error that says what to change, and leaves nothing.
 * `simmer run`, `simmer plan check` and the daemon's submissions all run it (after the plan's
 * own checks, PlanCheck), so a plan that checks valid is one that starts.
 */
import { Effect } from "effect"
import { join } from "node:path"
import { expectKind, readCheckpointConfig } from "../io/CheckpointFolder.ts"
import { configFileName } from "../io/CheckpointLayout.ts"
import { loadTokenizer } from "../io/Tokenizer.ts"
import { Datasets } from "../services/Datasets.ts"
import { DeviceMemory } from "../services/DeviceMemory.ts"
import { checkRuleFits } from "../reward/RuleReward.ts"
import { NoTrainingData } from "../tune/TuningData.ts"
import type { Plan } from "./Plan.ts"
import { planMemoryAdvice } from "./PlanFootprint.ts"
import { planTuners, runFootprint } from "./Run.ts"

export const preflight = (plan: Plan, modelPath: string) =>
  Effect.gen(function*() {
    const { config, hfConfig } = yield* readCheckpointConfig(modelPath)
    yield* expectKind(join(modelPath, configFileName), hfConfig, "causal-lm")
    yield* loadTokenizer(modelPath)
    const datasets = yield* Datasets
    for (const ref of [...plan.data.calibration, ...plan.data.evaluate, plan.data.general]) yield* datasets.open(ref)
    const tune = yield* Effect.forEach(plan.data.tune, (ref) => datasets.open(ref))
    const empty = tune.filter((d) => d.size("train") === 0)
    if (empty.length === tune.length) {
      return yield* new NoTrainingData({
        datasets: empty.map((d) => d.name),
        message: `There is nothing to tune on: the training split of ${empty.map((d) => d.name).join(", ")} is empty ` +
          "(JSONL files give 80% of their lines, chosen by prompt hash, to it). Use a larger file, or `splitBy: none`."
      })
    }
    // GRPO draws its prompts from the tuning data: every rule reward must be able to grade them.
    const rules = planTuners(plan).some((t) => t.tuner.kind === "grpo") ? (plan.reward ?? []).flatMap((r) => ("rule" in r ? [r.rule] : [])) : []
    for (const rule of rules) {
      const misfit = checkRuleFits(rule, tune)
      if (misfit !== undefined) return yield* misfit
    }
    const memory = yield* DeviceMemory
    const need = runFootprint(plan, config)
    yield* Effect.scoped(memory.reserve(`This plan on ${modelPath}`, need, { advice: planMemoryAdvice(need) }))
    return { config, need }
  })
