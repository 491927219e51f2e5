/**
 * Issue 14.18: when the launcher re-runs simmer under the bundled Node, a `kill -9` of the
 * launcher (the pid a user sees as simmer) must not leave the real worker running and writing.
 */
import { describe, expect, it } from "@effect/vitest"
import { execFileSync, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

const until = async (condition: () => boolean, what: string, limit = 120_000) => {
  for (let waited = 0; !condition(); waited += 100) {
    if (waited > limit) throw new Error(`gave up waiting: ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

describe("the launcher", () => {
  it("takes its child down when it is killed with SIGKILL", async () => {
    const dir = mkdtempSync(join(tmpdir(), "simmer-launcher-"))
    const parent = spawn(process.execPath, [
      join(import.meta.dirname, "launcher-parent.ts"),
      "train-base", "--out", join(dir, "model"), "--steps", "1000000", "--eval-every", "0", "--workers", "1",
      "--hidden", "8", "--layers", "1", "--heads", "2", "--kv-heads", "1", "--intermediate", "8", "--backend", "cpu"
    ], { stdio: ["ignore", "ignore", "pipe"] })
    let stderr = ""
    parent.stderr.on("data", (chunk) => (stderr += chunk))
    let child: number | undefined
    try {
      // Training has started: the child is busy and would go on for a very long time.
      await until(() => stderr.includes("training a"), "training to start")
      const pid = Number(execFileSync("pgrep", ["-P", String(parent.pid)], { encoding: "utf8" }).trim())
      child = pid
      expect(alive(pid)).toBe(true)
      parent.kill("SIGKILL")
      await until(() => !alive(pid), `the child ${pid} to exit after its launcher was killed`)
    } finally {
      parent.kill("SIGKILL")
      // Should the test fail, it must not leave the orphan computing.
      if (child !== undefined && alive(child)) process.kill(child, "SIGKILL")
      rmSync(dir, { recursive: true, force: true })
    }
  }, 180_000)
})
