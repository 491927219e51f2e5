/**
 * How the CLI answers a mistyped command (issue 14.8, 14.14): a value outside a flag's range is
 * refused when the command line is parsed (`eval --batch-size 0` used to hang, `--examples -3`
 * printed 0/0), as one line and a pointer to the help, not the whole help page; the help shows
 * defaults and ranges and marks the flags a command cannot run without.
 */
import { describe, expect, it } from "@effect/vitest"
import { simmer } from "../helpers/cli.ts"

describe("usage errors", () => {
  it("are one line per problem and where the help is, on stderr, for every numeric flag out of range", async () => {
    const [batch, examples, workers] = await Promise.all([
      simmer(["eval", "models/base", "--batch-size", "0"]),
      simmer(["eval", "models/base", "--examples", "-3"]),
      simmer(["run", "plans/demo.yaml", "--workers", "0"])
    ])
    for (const result of [batch, examples, workers]) {
      expect(result.status).toBe(1)
      expect(result.stdout).toBe("")
    }
    expect(batch.stderr).toBe('simmer: Invalid value for flag --batch-size: "0". Expected an integer ≥ 1\nsee `simmer eval --help`\n')
    expect(examples.stderr).toBe('simmer: Invalid value for flag --examples: "-3". Expected an integer ≥ 1\nsee `simmer eval --help`\n')
    expect(workers.stderr).toBe(
      'simmer: Invalid value for flag --workers: "0". Expected an integer ≥ 1 and ≤ 64\nsee `simmer run --help`\n'
    )
  }, 60_000)

  it("help shows defaults and ranges and marks required flags", async () => {
    const help = await simmer(["prune", "--help"])
    expect(help.status).toBe(0)
    const line = (flag: string) => help.stdout.split("\n").find((l) => l.trimStart().startsWith(`${flag} `)) ?? ""
    expect(line("--out")).toMatch(/\(required\)$/)
    expect(line("--batch-size")).toMatch(/Range: ≥ 1\. Default: 16\.$/)
    expect(line("--keep-params")).toMatch(/Range: > 0 and ≤ 1\.$/)
    expect(line("--unit")).toContain("Default: neurons.")
    expect(line("--replace")).not.toContain("(required)")
  }, 60_000)
})
