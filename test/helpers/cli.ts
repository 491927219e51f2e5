/**
 * Runs the real `simmer` (bin/simmer.js, as a user starts it) in a child process, without
 * blocking the test's event loop, so several invocations can run side by side.
 */
import { spawn } from "node:child_process"
import { join } from "node:path"

export const root = join(import.meta.dirname, "../..")

export interface CliResult {
  readonly status: number | null
  readonly stdout: string
  readonly stderr: string
}

/** A `simmer` process under way: the child (to signal it) and how it ends. */
export const simmerProcess = (args: ReadonlyArray<string>, options: { readonly cwd?: string; readonly env?: Record<string, string> } = {}) => {
  const child = spawn(process.execPath, [join(root, "bin/simmer.js"), ...args], {
    cwd: options.cwd ?? root,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, SIMMER_BACKEND: "cpu", ...options.env }
  })
  let stdout = ""
  let stderr = ""
  child.stdout.on("data", (chunk) => (stdout += chunk))
  child.stderr.on("data", (chunk) => (stderr += chunk))
  const result = new Promise<CliResult>((resolve, reject) => {
    child.on("error", reject)
    child.on("close", (status) => resolve({ status, stdout, stderr }))
  })
  return { child, result, stdout: () => stdout, stderr: () => stderr }
}

export const simmer = (args: ReadonlyArray<string>, options: { readonly cwd?: string; readonly env?: Record<string, string> } = {}): Promise<CliResult> =>
  simmerProcess(args, options).result

/** stderr without the backend's log line, for comparing messages. */
export const messages = (result: CliResult): Array<string> =>
  result.stderr.split("\n").filter((line) => line !== "" && !line.startsWith("[info] compute backend"))
