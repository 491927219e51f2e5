/**
 * How the real `simmer` answers the mistakes issue 14 reports (14.8, 14.14): `eval --batch-size 0`
 * used to hang and now is refused at once, as one line and a pointer to the help instead of the
 * help page; `--help` shows defaults and ranges and marks required flags. The combinators are
 * tested in process in Flags.test.ts.
 */
import { describe, expect, it } from "@effect/vitest"
import { simmer } from "../helpers/cli.ts"

describe("the simmer command line", () => {
  it("refuses --batch-size 0 at once with one line, and its help shows defaults, ranges and required flags", async () => {
    const [batch, help] = await Promise.all([simmer(["eval", "models/base", "--batch-size", "0"]), simmer(["prune", "--help"])])
    expect(batch.status).toBe(1)
    expect(batch.stdout).toBe("")
    expect(batch.stderr).toBe('simmer: Invalid value for flag --batch-size: "0". Expected an integer ≥ 1\nsee `simmer eval --help`\n')
    expect(help.status).toBe(0)
    const line = (flag: string) => help.stdout.split("\n").find((l) => l.trimStart().startsWith(`${flag} `)) ?? ""
    expect(line("--out")).toMatch(/\(required\)$/)
    expect(line("--batch-size")).toMatch(/Range: ≥ 1\. Default: 16\.$/)
    expect(line("--keep-params")).toMatch(/Range: > 0 and ≤ 1\.$/)
    expect(line("--unit")).toContain("Default: neurons.")
    expect(line("--replace")).not.toContain("(required)")
  }, 60_000)
})
