/**
 * The one way commands open a run folder (`resume`, `report`), so each mistake has one message:
 * a folder that does not exist, a file, a folder that is not a run at all, or a run folder
 * missing a file the command needs — instead of ENOENT on whichever file a command read first.
 */
import { readdir, stat } from "node:fs/promises"
import { Effect, Schema } from "effect"
import { describeCause, errnoCode } from "./Errors.ts"

export const planFileName = "plan.yaml"
export const eventsFileName = "events.ndjson"

/** What `simmer run` writes into a run folder before anything else. */
const runFiles = [planFileName, "run.json", eventsFileName] as const
export type RunFile = (typeof runFiles)[number]

export class NotARunFolder extends Schema.TaggedError<NotARunFolder>()("NotARunFolder", {
  path: Schema.String,
  message: Schema.String
}) {}

const why: Record<RunFile, string> = {
  "plan.yaml": "the run folder is incomplete",
  "run.json": "the run folder is incomplete",
  "events.ndjson": "the run has not logged anything yet"
}

/** Checks that `dir` is a run folder holding the files `needs`; fails with one NotARunFolder message per kind of mistake. */
export const openRunFolder = (dir: string, needs: ReadonlyArray<RunFile>): Effect.Effect<void, NotARunFolder> =>
  Effect.gen(function*() {
    const fail = (message: string) => Effect.fail(new NotARunFolder({ path: dir, message }))
    const entries = yield* Effect.tryPromise({
      try: async () => ((await stat(dir)).isDirectory() ? await readdir(dir) : undefined),
      catch: (cause) => cause
    }).pipe(Effect.catch((cause) =>
      fail(errnoCode(cause) === "ENOENT" ? `The run folder ${dir} does not exist.` : `Cannot read the run folder ${dir}: ${describeCause(cause)}.`)
    ))
    if (entries === undefined) return yield* fail(`${dir} is a file, not a run folder.`)
    if (!runFiles.some((f) => entries.includes(f))) {
      return yield* fail(
        `${dir} is not a run folder: it has no ${runFiles.join(", ")} (\`simmer run\` and \`simmer demo\` create run folders).`
      )
    }
    const missing = needs.filter((f) => !entries.includes(f))
    if (missing.length > 0) return yield* fail(`${dir} has no ${missing.join(" or ")}: ${why[missing[0]]}.`)
  })
