/**
 * `simmer demo`: the main job. Runs plans/demo.yaml — the Prune-Tune Loop on the bundled base
 * model down to half its non-embedding parameters, then the one-shot baseline with the same
 * tuning budget — and prints them side by side with the report's path. `--quick` runs a
 * scaled-down plan as a smoke test, and says so next to its table: with a few dozen test
 * examples and no gate its numbers are noise, and a reader must not take them for the result.
 */
import { join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { createRunFolder } from "../io/RunFolder.ts"
import { simmerVersion } from "../io/RunInfo.ts"
import { bundledModelPath, type Plan, plannedTuners, plannedTuningSteps, readPlan } from "../pipeline/Plan.ts"
import { comparison, formatComparison } from "../report/Comparison.ts"
import { jsonFlag } from "./Flags.ts"
import { runFlags, runInFolder } from "./RunCommands.ts"

/** One line that keeps a smoke test's table from being read as a result. */
export const smokeTestNote = (plan: Plan): string => {
  const examples = plan.data.evaluationExamples
  const gate = plan.gates.accuracyRetained === undefined ? "no accuracy gate" : `a ${plan.gates.accuracyRetained * 100}% gate`
  return `note: --quick is a smoke test that runs every stage, not a comparison: ${plan.iterations} iterations, ` +
    `${plannedTuners(plan).reduce((sum, t) => sum + plannedTuningSteps(t.steps, plan.iterations), 0)} tuning steps in all, ${gate}, ${examples} test examples per task (one example is ` +
    `${(100 / examples).toFixed(1)} points). \`simmer demo\` runs the real comparison.`
}

const planFile = (quick: boolean) => fileURLToPath(new URL(`../../plans/${quick ? "demo-quick" : "demo"}.yaml`, import.meta.url))

export const demoCommand = Command.make(
  "demo",
  {
    quick: Flag.Boolean("quick").pipe(Flag.withDescription("A scaled-down run (about a minute) that checks every stage works; too small to compare anything."), Flag.withDefault(false)),
    out: Flag.String("out").pipe(Flag.withDescription("Run folder (default: runs/demo-<date>)."), Flag.optional),
    ...runFlags,
    json: jsonFlag.pipe(Flag.withDescription("Print the NDJSON events on stdout, then the comparison as JSON."))
  },
  Effect.fnUntraced(function*(input) {
    const path = planFile(input.quick)
    const { plan, text } = yield* readPlan(path)
    const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19)
    const dir = resolve(Option.getOrElse(input.out, () => join("runs", `demo${input.quick ? "-quick" : ""}-${stamp}`)))
    const info = { modelPath: bundledModelPath, createdAt: new Date().toISOString(), simmerVersion }
    yield* createRunFolder(dir, text, info)
    yield* Effect.logInfo(`demo: ${path} → ${dir}`)
    const events = yield* runInFolder(dir, plan, info, input)
    const rows = comparison(events)
    const note = input.quick ? smokeTestNote(plan) : undefined
    if (input.json) yield* Console.log(JSON.stringify({ run: dir, comparison: rows, ...(note !== undefined ? { note } : {}) }))
    else yield* Console.log(`\n${formatComparison(rows)}\n${note !== undefined ? `${note}\n` : ""}\nrun folder: ${dir}`)
  })
).pipe(Command.withDescription("Compress the bundled model to half its size with the Prune-Tune Loop and compare with one-shot pruning."))
