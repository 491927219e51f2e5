/**
 * Runs the real `simmer` (bin/simmer.js, as a user starts it) in a child process, without
 * blocking the test's event loop, so several invocations can run side by side.
 */
import { type ChildProcess, spawn } from "node:child_process"
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

/** A `simmer` started in the background, for tests that signal it while it works. */
export interface StartedSimmer {
  readonly child: ChildProcess
  /** stderr so far. */
  readonly stderr: () => string
  /** The exit status, once it has ended. */
  readonly exit: Promise<number | null>
}

export const startSimmer = (args: ReadonlyArray<string>): StartedSimmer => {
  const child = spawn(process.execPath, [join(root, "bin/simmer.js"), ...args], {
    cwd: root,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, SIMMER_BACKEND: "cpu" }
  })
  let stderr = ""
  child.stderr!.on("data", (chunk) => (stderr += chunk))
  const exit = new Promise<number | null>((resolve) => child.on("close", resolve))
  return { child, stderr: () => stderr, exit }
}

/** Resolves once `condition` holds, polling; rejects naming `what` after a minute. */
export const waitFor = async (condition: () => boolean, what: string): Promise<void> => {
  for (let i = 0; i < 1200 && !condition(); i++) await new Promise((r) => setTimeout(r, 50))
  if (!condition()) throw new Error(`gave up waiting for ${what}`)
}
