/**
 * `simmer demo`: the main job. Runs plans/demo.yaml — the Prune-Tune Loop on the bundled base
 * model down to half its non-embedding parameters, then the one-shot baseline with the same
 * tuning budget — and prints them side by side with the report's path. `--quick` runs a
 * scaled-down plan as a smoke test.
 */
import { join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { Console, Effect, Option } from "effect"
import { Command, Flag } from "effect/cli"
import { createRunFolder } from "../io/RunFolder.ts"
import { bundledModelPath, readPlan } from "../pipeline/Plan.ts"
import { comparison, formatComparison } from "../report/Comparison.ts"
import { jsonFlag } from "./Flags.ts"
import { type RunLayers, runFlags, runInFolder } from "./RunCommands.ts"

const planFile = (quick: boolean) => fileURLToPath(new URL(`../../plans/${quick ? "demo-quick" : "demo"}.yaml`, import.meta.url))

export const demoCommand = (layers: RunLayers) =>
  Command.make(
    "demo",
    {
      quick: Flag.Boolean("quick").pipe(Flag.withDescription("A scaled-down run (about a minute), as a smoke test."), Flag.withDefault(false)),
      out: Flag.String("out").pipe(Flag.withDescription("Run folder (default: runs/demo-<date>)."), Flag.optional),
      ...runFlags,
      json: jsonFlag.pipe(Flag.withDescription("Print the NDJSON events on stdout, then the comparison as JSON."))
    },
    Effect.fnUntraced(function*(input) {
      const path = planFile(input.quick)
      const { plan, text } = yield* readPlan(path)
      const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19)
      const dir = resolve(Option.getOrElse(input.out, () => join("runs", `demo${input.quick ? "-quick" : ""}-${stamp}`)))
      const info = { modelPath: bundledModelPath, createdAt: new Date().toISOString() }
      yield* createRunFolder(dir, text, info)
      yield* Effect.logInfo(`demo: ${path} → ${dir}`)
      const events = yield* runInFolder(layers, dir, plan, info, input)
      const rows = comparison(events)
      if (input.json) yield* Console.log(JSON.stringify({ run: dir, comparison: rows }))
      else yield* Console.log(`\n${formatComparison(rows)}\n\nrun folder: ${dir}`)
    })
  ).pipe(Command.withDescription("Compress the bundled model to half its size with the Prune-Tune Loop and compare with one-shot pruning."))
