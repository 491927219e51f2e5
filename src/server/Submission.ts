/**
 * Whether a submitted plan may be queued, decided before anything is written: it parses (every
 * problem with its line and path, as `simmer plan check` says them: 400), its model and data
 * files lie under the allowed roots (403, checked before the files are looked at, so the answer
 * says nothing about what exists elsewhere), the files exist and the target is reachable (400),
 * it asks for this daemon's backend, and it passes `simmer run`'s preflight (tokenizer and data
 * readable, something to tune on: 400) with its estimated peak within the whole memory budget
 * (422). Only a plan that can never fit is refused; one that must wait for other runs is queued.
 */
import { relative } from "node:path"
import { Effect } from "effect"
import { bundledModelMeant, bundledModelPath, parsePlanChecked, type Plan, resolveModelPath } from "../pipeline/Plan.ts"
import { checkPlanInputs } from "../pipeline/PlanCheck.ts"
import { pinHubRefs } from "../pipeline/PlanHubRefs.ts"
import { resolveInference } from "../compute/Inference.ts"
import { preflight } from "../pipeline/Preflight.ts"
import { DeviceMemory, makeDeviceMemory } from "../services/DeviceMemory.ts"
import type { DatasetRef } from "../services/Datasets.ts"
import { outsideRoots } from "./AllowedRoots.ts"
import { InvalidSubmission, PathNotAllowed, PlanNotRunnable } from "./Api.ts"

export interface SubmissionContext {
  /** The folder relative paths in the plan are read from. */
  readonly folder: string
  readonly allowedRoots: ReadonlyArray<string>
  /** The daemon's compute backend (tensorflow, webgpu, wasm, cpu). */
  readonly backend: string
  readonly memory: { readonly kind: string; readonly budgetBytes: number; readonly bindingLimitBytes: number }
}

/** Every file a plan reads besides its model. */
export const planDataFiles = (plan: Plan): ReadonlyArray<string> =>
  [...plan.data.tune, ...plan.data.calibration, ...plan.data.evaluate, plan.data.general].flatMap((ref: DatasetRef) => ("file" in ref ? [ref.file] : []))

const label = "the submitted plan"

const invalid = (e: { readonly message: string; readonly problems: ReadonlyArray<string> }) =>
  new InvalidSubmission({ message: e.message, problems: e.problems })

/** The plan and its model folder, when the plan may be queued. */
export const admitPlan = (text: string, context: SubmissionContext) =>
  Effect.gen(function*() {
    const parsed = yield* parsePlanChecked(text, label, { relativeTo: context.folder }).pipe(Effect.mapError(invalid))
    // Hub ids are fetched into the cache now and pinned; the roots then apply to the cache's folders.
    const { plan, pins } = yield* pinHubRefs(parsed.plan).pipe(Effect.mapError((e) => new InvalidSubmission({ message: e.message, problems: [e.message] })))
    const modelPath = resolveModelPath(plan)
    // A bare name near a bundled model's is a typo, whatever lies beside the plan's folder.
    const meant = bundledModelMeant(relative(context.folder, modelPath))
    if (meant !== undefined && outsideRoots(modelPath, context.allowedRoots) !== undefined) {
      const problem = `model: "${relative(context.folder, modelPath)}" is not a bundled model; did you mean ${meant}?`
      return yield* new InvalidSubmission({ message: `The plan cannot be run: ${problem}`, problems: [problem] })
    }
    for (const path of [modelPath, ...planDataFiles(plan)]) {
      const why = outsideRoots(path, context.allowedRoots)
      if (why !== undefined) return yield* new PathNotAllowed({ path, message: `The plan cannot be run here: ${why}` })
    }
    // Only now that every path lies under the roots: whether the files exist, and what the model allows.
    yield* parsed.checkInputs(checkPlanInputs(bundledModelPath)).pipe(Effect.mapError(invalid))
    if (plan.backend !== "auto" && plan.backend !== context.backend) {
      return yield* new PlanNotRunnable({
        message: `The plan asks for the ${plan.backend} backend, but this daemon computes on ${context.backend}; ` +
          `set \`backend: auto\` (or ${context.backend}) in the plan, or run it with \`simmer run\`.`
      })
    }
    // Against an empty budget of this daemon's size: the runs going now do not count here.
    const empty = yield* makeDeviceMemory(context.memory.kind, context.memory.budgetBytes, undefined, context.memory.bindingLimitBytes)
    // The engine the run's process will evaluate with (RunProcess resolves it the same way).
    const inference = yield* resolveInference(undefined, context.backend)
    yield* preflight(plan, modelPath, inference).pipe(
      Effect.provideService(DeviceMemory, empty),
      Effect.catchTag("MemoryBudgetExceeded", (e) =>
        Effect.fail(new PlanNotRunnable({ message: e.message, requiredBytes: e.requiredBytes, budgetBytes: e.budgetBytes }))),
      Effect.mapError((e) => (e._tag === "PlanNotRunnable" ? e : new InvalidSubmission({ message: e.message, problems: [e.message] })))
    )
    return { plan, modelPath, pins }
  })
