/**
 * Runs one `simmer` command in this process and, as the process exits, writes its wall time and
 * peak resident memory (VmHWM from /proc/self/status, the kernel's high-water mark) as JSON to
 * the file named by the first argument: `node bench/measure.ts OUT.json inspect DIR --json`. The
 * `scale` benchmark runs every stage this way, one process per stage, so each peak is that
 * stage's alone. `node bench/measure.ts OUT.json adapter-step DIR` runs bench/adapterStep.ts
 * instead of a simmer command (tuning has no command of its own) and prints its JSON.
 */
import { readFileSync, writeFileSync } from "node:fs"

const [out, ...args] = process.argv.slice(2)
if (out === undefined || args.length === 0) {
  process.stderr.write("usage: node bench/measure.ts OUT.json <simmer arguments>\n")
  process.exit(2)
}
const started = performance.now()
const kib = (field: string): number => {
  const line = readFileSync("/proc/self/status", "utf8").split("\n").find((l) => l.startsWith(`${field}:`))
  return line === undefined ? NaN : Number(line.replace(/\D+/g, ""))
}
process.on("exit", (code) => {
  writeFileSync(out, JSON.stringify({ seconds: (performance.now() - started) / 1000, peakRssBytes: kib("VmHWM") * 1024, exitCode: code }))
})
if (args[0] === "adapter-step") {
  const { adapterStep } = await import("./adapterStep.ts")
  process.stdout.write(`${JSON.stringify(await adapterStep(args[1]))}\n`)
  process.exit(0)
} else {
  process.argv = [process.argv[0], "simmer", ...args]
  await import("../src/cli/main.ts")
}
