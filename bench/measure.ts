/**
 * Runs one `simmer` command in this process and, as the process exits, writes its wall time and
 * peak resident memory (VmHWM from /proc/self/status, the kernel's high-water mark) as JSON to
 * the file named by the first argument: `node bench/measure.ts OUT.json inspect DIR --json`. The
 * `scale` benchmark runs every stage this way, one process per stage, so each peak is that
 * stage's alone.
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
process.argv = [process.argv[0], "simmer", ...args]
await import("../src/cli/main.ts")
