/**
 * Everything a run needs, checked before anything is created for it (a run folder, a queued
 * job): its setup (RunSetup.ts: config, tokenizer, every dataset, rule rewards) and its memory
 * estimate against the budget. A plan that passes can start; one that fails gets the typed error
 * that says what to change, and leaves nothing. `simmer run`, `simmer plan check` and the
 * daemon's submissions all run it (after the plan's own checks, PlanCheck), so a plan that
 * checks valid is one that starts. It starts no gradient workers and loads no reward model.
 */
import { Effect } from "effect"
import type { InferenceEngine } from "../compute/Inference.ts"
import type { Plan } from "./Plan.ts"
import { readRunSetup, reserveRunMemory } from "./RunSetup.ts"

/** `inference`: the engine the run's evaluation will decode with (its session counts where the budget is host memory). */
export const preflight = (plan: Plan, modelPath: string, inference: InferenceEngine) =>
  Effect.gen(function*() {
    const setup = yield* readRunSetup(plan, modelPath, inference)
    yield* Effect.scoped(reserveRunMemory(setup))
    return setup
  })
