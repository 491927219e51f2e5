/**
 * A run's job as an executor needs it — its folder, its plan and its model — read back from
 * the run folder (plan.yaml and run.json, written at submission). The daemon reads it before
 * each start; a cluster runner reads it from the shared directory when the run lands on it.
 */
import { join } from "node:path"
import { Effect } from "effect"
import { planFileName } from "../io/RunFolder.ts"
import { readRunInfo, RunFolderUnreadable } from "../io/RunInfo.ts"
import { readPlan } from "../pipeline/Plan.ts"
import { applyHubPins, pinHubRefs } from "../pipeline/PlanHubRefs.ts"
import type { RunId } from "../services/JobStore.ts"
import type { RunJob } from "./RunExecutor.ts"

/** The job of run `id` in folder `dir`; fails, saying why in one line, when the folder is unusable. */
export const readRunJob = (id: RunId, dir: string): Effect.Effect<RunJob, RunFolderUnreadable> =>
  Effect.gen(function*() {
    const unreadable = (e: { readonly message: string }) => new RunFolderUnreadable({ dir, message: e.message })
    const info = yield* readRunInfo(dir)
    const { plan: written } = yield* readPlan(join(dir, planFileName), info.planFolder !== undefined ? { relativeTo: info.planFolder } : {})
      .pipe(Effect.mapError(unreadable))
    // Hub ids at the commits pinned at submission, read from the cache.
    const { plan } = yield* pinHubRefs(applyHubPins(written, info.hub ?? [])).pipe(Effect.mapError(unreadable))
    return { id, dir, plan, modelPath: info.modelPath } satisfies RunJob
  })
