// Runs simmer's CLI as a child under another Node binary (bin/simmer.js uses it when the Node
// that started us is too old) and behaves like it: arguments, stdio, exit code and signals are
// passed through. SIGKILL cannot be passed on, so the child also gets an IPC channel: it exits
// when the channel closes, which is what happens when this process dies by any means
// (src/cli/ParentWatch.ts), so `kill -9` of simmer never leaves a worker writing to a run folder.
import { spawn } from "node:child_process"

/** Starts `script` with `args` under `node` and mirrors the child; returns the child process. */
export const relaunch = (node, script, args) => {
  const child = spawn(node, [script, ...args], { stdio: ["inherit", "inherit", "inherit", "ipc"] })
  // The child shares our terminal's process group for SIGINT; SIGTERM (spot preemption) comes
  // to us alone, so pass it on and let the child stop gracefully.
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"]) process.on(signal, () => child.kill(signal))
  child.on("exit", (code, signal) => process.exit(code ?? (signal === "SIGINT" ? 130 : 143)))
  return child
}
