/**
 * A plan's Hub ids brought into the cache and pinned before a run starts: every checkpoint it
 * names by id (model, teacher, reward models) becomes its snapshot folder, and every Hub
 * dataset reference names the commit it was read at. The pins go into run.json; a resumed run
 * (or the daemon running a submitted plan) applies them, so it reads the same commits from the
 * cache without asking the Hub.
 */
import { isAbsolute } from "node:path"
import { Effect } from "effect"
import { parquetFiles } from "../hub/HubDataset.ts"
import type { HubError } from "../hub/HubError.ts"
import { formatHubId, parseHubId } from "../hub/HubId.ts"
import { fetchModel } from "../hub/HubModel.ts"
import type { HubPin } from "../hub/HubPin.ts"
import { fetchSnapshot } from "../hub/HubSnapshot.ts"
import { type HubDatasetRef } from "../services/Datasets.ts"
import { mapPlanInputs, type Plan, planCheckpoints, planDatasets } from "./Plan.ts"

/** A checkpoint string of a resolved plan that names a Hub id (local paths are absolute by then). */
const hubCheckpoint = (written: string) => (written === "base" || isAbsolute(written) ? undefined : parseHubId(written))

const pinnedId = (id: string, commit: string) => formatHubId({ repo: parseHubId(id)!.repo, revision: commit })

export interface PinnedPlan {
  /** The plan with snapshot folders for checkpoint ids and commits in dataset ids. */
  readonly plan: Plan
  readonly pins: ReadonlyArray<HubPin>
}

/** Fetches everything the plan names by Hub id into the cache, and pins it (see above). */
export const pinHubRefs = (plan: Plan, options: { readonly weights: boolean } = { weights: true }): Effect.Effect<PinnedPlan, HubError> =>
  Effect.gen(function*() {
    const folders = new Map<string, string>()
    const commits = new Map<string, string>()
    const pins: Array<HubPin> = []
    for (const written of new Set(planCheckpoints(plan))) {
      const id = hubCheckpoint(written)
      if (id === undefined) continue
      const snapshot = yield* fetchModel(id, options)
      folders.set(written, snapshot.dir)
      pins.push({ kind: "model", id: written, commit: snapshot.commit })
    }
    const hubRefs = planDatasets(plan).filter((ref): ref is HubDatasetRef => "hub" in ref)
    for (const ref of hubRefs) {
      const snapshot = yield* fetchSnapshot({ kind: "dataset", id: parseHubId(ref.hub)!, select: parquetFiles(ref.config, ref.split) })
      if (!commits.has(ref.hub)) pins.push({ kind: "dataset", id: ref.hub, commit: snapshot.commit })
      commits.set(ref.hub, snapshot.commit)
    }
    return {
      plan: mapPlanInputs(
        plan,
        (written) => folders.get(written) ?? written,
        (ref) => ("hub" in ref && commits.has(ref.hub) ? { ...ref, hub: pinnedId(ref.hub, commits.get(ref.hub)!) } : ref)
      ),
      pins
    }
  })

/** The plan with its Hub ids replaced by the commits a run recorded (then `pinHubRefs` reads them from the cache). */
export const applyHubPins = (plan: Plan, pins: ReadonlyArray<HubPin>): Plan => {
  const commitOf = (kind: HubPin["kind"], id: string) => pins.find((p) => p.kind === kind && p.id === id)?.commit
  return mapPlanInputs(
    plan,
    (written) => {
      const commit = hubCheckpoint(written) !== undefined ? commitOf("model", written) : undefined
      return commit !== undefined ? pinnedId(written, commit) : written
    },
    (ref) => {
      const commit = "hub" in ref ? commitOf("dataset", ref.hub) : undefined
      return "hub" in ref && commit !== undefined ? { ...ref, hub: pinnedId(ref.hub, commit) } : ref
    }
  )
}
