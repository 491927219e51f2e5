/**
 * `simmer train-base` as a user meets it (issue 25): one at a time per output; stopped by
 * SIGTERM at a step boundary, it saves its state beside the output and exits 75; the same
 * command continues it to the bytes an uninterrupted training writes (cpu backend); other
 * flags are refused by name.
 */
import { describe, expect, it } from "@effect/vitest"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { Effect } from "effect"
import { simmer, startSimmer, waitFor } from "../helpers/cli.ts"
import { tempDir } from "../io/_support.ts"

/** A model of a thousand parameters on four tasks, one of them new: a few seconds per run. */
const tinyWith = (tasks: string) => [
  "--steps", "60", "--eval-every", "0", "--eval-examples", "4", "--save-every", "0", "--workers", "1",
  "--hidden", "8", "--layers", "1", "--heads", "2", "--kv-heads", "1", "--intermediate", "8",
  "--batch-size", "2", "--program-batch-size", "2", "--tasks", tasks, "--backend", "cpu"
]
const tiny = tinyWith("arith,sort=2,units,general")

describe("simmer train-base", () => {
  it.live("SIGTERM saves the state and exits 75; the same command continues to the bytes of an uninterrupted training", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      const straight = yield* Effect.promise(() => simmer(["train-base", "--out", join(tmp, "straight"), ...tiny]))
      expect(straight.status, straight.stderr).toBe(0)
      expect(straight.stdout).toMatch(/sort accuracy \d+\.\d% \(4 test examples\)/)
      expect(straight.stdout).toContain("general perplexity")

      const out = join(tmp, "stopped")
      const first = startSimmer(["train-base", "--out", out, ...tiny])
      // Paused once the first step is done, so the stop lands mid-training whatever the machine's speed.
      yield* Effect.promise(() => waitFor(() => first.stderr().includes("train-base 1/60"), "the first step"))
      first.child.kill("SIGSTOP")
      // One training per output at a time.
      const second = yield* Effect.promise(() => simmer(["train-base", "--out", out, ...tiny]))
      expect(second.status).toBe(1)
      expect(second.stderr).toContain(`is being trained by another simmer process (pid ${first.child.pid}`)
      first.child.kill("SIGTERM")
      first.child.kill("SIGCONT")
      expect(yield* Effect.promise(() => first.exit), first.stderr()).toBe(75)
      expect(first.stderr()).toContain("interrupted: run the same command to continue")
      expect(existsSync(out)).toBe(false)
      const saved = JSON.parse(readFileSync(`${out}.training/state.json`, "utf8"))
      expect(saved.step).toBeGreaterThan(0)
      expect(saved.step).toBeLessThan(60)
      expect(saved.optimizerStep).toBe(saved.step)

      // Other settings would not continue the same training: refused, naming what differs.
      const other = yield* Effect.promise(() => simmer(["train-base", "--out", out, ...tiny, "--lr", "0.01"]))
      expect(other.status).toBe(1)
      expect(other.stderr).toContain("recipe.peakLr 0.003, not 0.01")

      const resumed = yield* Effect.promise(() => simmer(["train-base", "--out", out, ...tiny]))
      expect(resumed.status, resumed.stderr).toBe(0)
      expect(resumed.stderr).toContain(`continuing the stopped training in ${out}.training at step ${saved.step}`)
      expect(readFileSync(join(out, "model.safetensors")).equals(readFileSync(join(tmp, "straight", "model.safetensors")))).toBe(true)
      expect(existsSync(`${out}.training`)).toBe(false)

      // A finished output is refused before any training.
      const again = yield* Effect.promise(() => simmer(["train-base", "--out", out, ...tiny]))
      expect(again.status).toBe(1)
      expect(again.stderr).toContain("already exists")
    }), 300_000)

  it.live("refuses a task list it cannot train on, saying why", () =>
    Effect.gen(function*() {
      const tmp = yield* tempDir
      const result = yield* Effect.promise(() => simmer(["train-base", "--out", join(tmp, "m"), ...tinyWith("arith,poetry")]))
      expect(result.status).toBe(1)
      expect(result.stderr).toContain("--tasks arith,poetry: poetry is not a built-in task")
    }), 120_000)
})
