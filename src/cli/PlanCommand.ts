/**
 * `simmer plan --example` prints a commented example plan; `simmer plan check <plan>`
 * validates one without running it, with the checks `simmer run` makes before it starts
 * (readRunnablePlan): every problem of the plan's keys and values with its line, what the text
 * cannot tell (the model folder and data files exist, the target can be reached with the plan's
 * units), then the tokenizer, every dataset read whole and the memory estimate against the budget.
 */
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { Console, Effect } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { describeFootprint } from "../model/Footprint.ts"
import { plannedTuners, planUnitsOf, scorerFor } from "../pipeline/Plan.ts"
import { backendFlag, inferenceFlag, memoryFlag } from "./Flags.ts"
import { InvalidArguments } from "./Output.ts"
import { readRunnablePlan } from "./RunCommands.ts"

export const examplePlanPath = fileURLToPath(new URL("../../plans/demo.yaml", import.meta.url))

const check = Command.make(
  "check",
  {
    plan: Argument.String("plan").pipe(
      Argument.withDescription("The plan file to validate. Relative paths inside it are read from its folder.")
    ),
    backend: backendFlag,
    memory: memoryFlag,
    inference: inferenceFlag
  },
  Effect.fnUntraced(function*(input) {
    const { plan, setup } = yield* readRunnablePlan(input.plan, { ...input, weights: false })
    const need = setup.footprint
    const target = "parameters" in plan.target
      ? `${(plan.target.parameters * 100).toFixed(0)}% of the non-embedding parameters`
      : Object.entries(plan.target.perLayer).map(([u, n]) => `${n} ${u} per layer`).join(", ")
    const units = planUnitsOf(plan).map((u) => `${u} (scorer ${scorerFor(plan, u)})`).join(", ")
    const tuners = plannedTuners(plan).map((t) =>
      `${t.kind}${"adapter" in t && t.adapter !== undefined ? ` with rank-${t.adapter.rank} adapters on ${t.adapter.targets.join(", ")}` : ""} ` +
      `${typeof t.steps === "number" ? `${t.steps} steps each` : `${t.steps.join("/")} steps`}`
    )
    yield* Console.log(
      `${input.plan} is valid: ${plan.model === "base" ? "the bundled model" : plan.model} → ${target}, pruning ${units} over ${plan.iterations} ${plan.schedule} iterations, ` +
        `${tuners.join(" then ")}${plan.baselines.length > 0 ? `, baselines ${plan.baselines.join(", ")}` : ""}.`
    )
    // What `simmer run` will reserve (within the budget, or the check above refused the plan).
    yield* Console.log(`Estimated peak memory: ${describeFootprint(need)}.`)
  })
).pipe(Command.withDescription("Validate a plan without running it."))

export const planCommand = Command.make(
  "plan",
  {
    example: Flag.Boolean("example").pipe(Flag.withDescription("Print a commented example plan."), Flag.withDefault(false))
  },
  Effect.fnUntraced(function*(input) {
    if (!input.example) {
      return yield* new InvalidArguments({ message: "Use `simmer plan --example` or `simmer plan check <plan.yaml>`." })
    }
    yield* Console.log(readFileSync(examplePlanPath, "utf8").trimEnd())
  })
).pipe(
  Command.withDescription("Write and check plans: the model, data, target, schedule, tuner and gates of a run."),
  Command.withSubcommands([check])
)
