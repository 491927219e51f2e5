/** `simmer serve`'s cluster flags: what does not make sense together is refused, saying why. */
import { describe, expect, it } from "@effect/vitest"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { simmer } from "../helpers/cli.ts"

const data = () => join(mkdtempSync(join(tmpdir(), "simmer-flags-")), "data")

describe("simmer serve --cluster flags", () => {
  it("refuses runner flags without --cluster, a URL that is not Postgres, a bad runner address, and --no-api alone", async () => {
    const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
      [["--runner-address", "127.0.0.1:4000"], "--runner-address and --no-api belong to cluster mode: add --cluster postgres://…"],
      [["--cluster", "mysql://db/simmer"], `--cluster takes a Postgres URL (postgres://user:password@host:port/database), not "mysql://db/simmer".`],
      [["--cluster", "postgres://db/simmer", "--runner-address", "gpu-7"], `--runner-address takes host:port (e.g. 10.0.0.7:34431), not "gpu-7".`],
      [["--cluster", "postgres://db/simmer", "--no-api"], "--no-api without --runner-address leaves this process nothing to do: give it a runner address."]
    ]
    for (const [args, message] of cases) {
      const ran = await simmer(["serve", "--data", data(), "--port", "0", ...args])
      expect(ran.status, args.join(" ")).toBe(1)
      expect(ran.stderr, args.join(" ")).toContain(`simmer: ${message}`)
    }
  }, 60_000)
})
