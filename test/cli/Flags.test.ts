/**
 * The flag combinators and the usage-error presenter in process (issue 14.8, 14.14): ranges are
 * checked when the command line is parsed, with the range and the default in the help, and a
 * usage error is one line per problem and where the help is. Test/cli/Usage.test.ts runs the
 * real binary for the cases a user met.
 */
import { NodeServices } from "@effect/platform-node"
import { describe, expect, it } from "@effect/vitest"
import { Console, Effect, Exit } from "effect"
import { Command, Flag } from "effect/cli"
import { repeatable, withRange, withShownDefault, workersFlag } from "../../src/cli/Flags.ts"
import { cliOutputLayer } from "../../src/cli/Output.ts"

const probe = Command.make("probe", {
  workers: workersFlag,
  examples: Flag.Int("examples").pipe(Flag.withDescription("Examples."), withRange({ min: 1 }), withShownDefault(500)),
  topP: Flag.Finite("top-p").pipe(Flag.withDescription("Nucleus."), withRange({ min: 0, minExclusive: true, max: 1 }, "number"), withShownDefault(1)),
  out: Flag.String("out").pipe(Flag.withDescription("Where to.")),
  tags: Flag.String("tag").pipe(Flag.withDescription("A tag; repeat for more."), repeatable)
}, (input) => Effect.sync(() => void (parsedTags = input.tags)))

let parsedTags: ReadonlyArray<string> | undefined

/** Runs `probe args` and returns what it printed on stdout and stderr, and whether it succeeded. */
const run = (args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const out: Array<string> = []
    const err: Array<string> = []
    const console = { ...globalThis.console, log: (...a: Array<unknown>) => out.push(a.join(" ")), error: (...a: Array<unknown>) => err.push(a.join(" ")) }
    const exit = yield* Command.runWith(probe, { version: "0" })(args).pipe(
      Effect.provide(cliOutputLayer),
      Effect.provideService(Console.Console, console),
      Effect.provide(NodeServices.layer),
      Effect.exit
    )
    return { ok: Exit.isSuccess(exit), stdout: out.join("\n"), stderr: err.join("\n") }
  })

describe("flags", () => {
  it.effect("refuse values out of range when parsed: one line and where the help is, nothing on stdout", () =>
    Effect.gen(function*() {
      for (const [args, line] of [
        [["--out", "x", "--workers", "0"], 'Invalid value for flag --workers: "0". Expected an integer ≥ 1 and ≤ 64'],
        [["--out", "x", "--examples", "-3"], 'Invalid value for flag --examples: "-3". Expected an integer ≥ 1'],
        [["--out", "x", "--top-p", "0"], 'Invalid value for flag --top-p: "0". Expected a number > 0 and ≤ 1'],
        [["--examples", "5"], "Missing required flag: --out"],
        [["--out", "x", "--exampels", "5"], "unknown flag --exampels; did you mean --examples?"]
      ] as const) {
        const result = yield* run(args)
        expect(result.ok).toBe(false)
        expect(result.stdout).toBe("")
        expect(result.stderr).toBe(`simmer: ${line}\nsee \`probe --help\``)
      }
      expect((yield* run(["--out", "x", "--workers", "64", "--top-p", "1"])).ok).toBe(true)
    }))

  it.effect("show their range and default in the help, and required flags are marked", () =>
    Effect.gen(function*() {
      const help = (yield* run(["--help"])).stdout.split("\n")
      const line = (flag: string) => help.find((l) => l.trimStart().startsWith(`${flag} `)) ?? ""
      expect(line("--examples")).toMatch(/Examples\. Range: ≥ 1\. Default: 500\.$/)
      expect(line("--top-p")).toMatch(/Nucleus\. Range: > 0 and ≤ 1\. Default: 1\.$/)
      expect(line("--workers")).toMatch(/Range: ≥ 1 and ≤ 64\. Default: \$SIMMER_WORKERS, else 2\.$/)
      expect(line("--out")).toMatch(/Where to\. \(required\)$/)
      // The library's help marks a flag allowed zero times as required; `repeatable` is not.
      expect(line("--tag")).toMatch(/A tag; repeat for more\.$/)
    }))

  it.effect("a repeatable flag may be left out or given several times", () =>
    Effect.gen(function*() {
      expect((yield* run(["--out", "x"])).ok).toBe(true)
      expect(parsedTags).toEqual([])
      expect((yield* run(["--out", "x", "--tag", "a", "--tag", "b"])).ok).toBe(true)
      expect(parsedTags).toEqual(["a", "b"])
    }))
})
