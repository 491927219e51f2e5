/**
 * `npm run bench -- <benchmark> [options]`: runs one benchmark and prints its result as one
 * JSON document on stdout (progress goes to stderr; `npm run -s` also drops npm's own header
 * line from stdout), and to a file with `--out FILE`. Each benchmark lives in its own file and
 * is registered here by name.
 */
import { writeFileSync } from "node:fs"
import type { Benchmark } from "./common.ts"
import { parseOptions } from "./common.ts"

const benchmarks: Record<string, () => Promise<Benchmark>> = {
  train: async () => (await import("./train.ts")).train,
  infer: async () => (await import("./infer.ts")).infer,
  prefill: async () => (await import("./prefill.ts")).prefill,
  attention: async () => (await import("./attention.ts")).attentionBench,
  kernels: async () => (await import("./kernels.ts")).kernels,
  profile: async () => (await import("./profile.ts")).profile,
  "adapter-step-profile": async () => (await import("./adapterStepProfile.ts")).adapterStepProfile,
  prune: async () => (await import("./prune.ts")).prune,
  eval: async () => (await import("./eval.ts")).evalBench,
  quality: async () => (await import("./quality.ts")).quality,
  recovery: async () => (await import("./recovery.ts")).recovery,
  "prune-accuracy": async () => (await import("./pruneAccuracy.ts")).pruneAccuracy,
  "make-checkpoint": async () => (await import("./checkpoints.ts")).makeCheckpointBench,
  scale: async () => (await import("./scale.ts")).scale,
  serve: async () => (await import("./serve.ts")).serveBench,
  cluster: async () => (await import("./cluster.ts")).clusterBench
}

const usage = async (): Promise<string> => {
  const lines = ["usage: npm run -s bench -- <benchmark> [options] [--out FILE]", ""]
  for (const [name, load] of Object.entries(benchmarks)) {
    const b = await load()
    lines.push(`  ${name.padEnd(10)} ${b.summary}`, `             npm run -s bench -- ${b.usage}`)
  }
  return lines.join("\n")
}

const main = async () => {
  const [name, ...rest] = process.argv.slice(2)
  if (name === undefined || name === "--help" || name === "-h" || !(name in benchmarks)) {
    process.stderr.write(`${name !== undefined && !name.startsWith("-") ? `unknown benchmark "${name}"\n\n` : ""}${await usage()}\n`)
    process.exit(name === undefined || name.startsWith("-") ? 0 : 2)
  }
  const benchmark = await benchmarks[name]()
  const options = new Map(parseOptions(rest))
  const out = options.get("out")
  options.delete("out")
  const known = benchmark.options
  for (const option of known === undefined ? [] : options.keys()) {
    if (!known!.includes(option)) {
      throw new Error(`${name}: unknown option --${option} (known: ${known!.map((o) => `--${o}`).join(", ")}, --out)`)
    }
  }
  const json = `${JSON.stringify(await benchmark.run(options), null, 2)}\n`
  if (out !== undefined) writeFileSync(out, json)
  process.stdout.write(json)
  // Worker threads and the wasm module must not keep the process alive after the result.
  process.exit(0)
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  process.exit(1)
})
