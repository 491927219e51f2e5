/**
 * `npm run -s bench -- scale`: how cost grows with model size. A ladder of randomly initialised
 * bf16 checkpoints (see checkpoints.ts: tiny-1m, small-8m, smollm2-135m, qwen2.5-0.5b,
 * qwen2.5-1.5b; written under --dir, /tmp by default, and deleted afterwards unless --keep), and
 * for each rung these stages, each in its own process (bench/measure.ts) so its peak RSS
 * (VmHWM) is its own:
 *   inspect   `simmer inspect` (headers only)
 *   generate  `simmer generate --ids ... --max-new-tokens 8` (whole model on the device, or
 *             refused when it does not fit)
 *   prune     `simmer prune --target 0.5` with the default calibration (64 arith examples,
 *             activation scorer): score block by block, cut and save
 *   eval      `simmer eval --task general` on --eval-examples examples (perplexity, block by block)
 *   adapter-step  one rank-16 adapter tuning step on 8 arith examples (bench/adapterStep.ts)
 * Then the exponent k of time ∝ parametersᵏ per stage (least squares on log-log), and, with
 * --plot FILE, a log-log SVG of time against parameters.
 */
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { lineChart, palette } from "../src/report/SvgPlot.ts"
import { general } from "../src/tasks/General.ts"
import { encodeExample } from "../src/tasks/Encode.ts"
import { baseTokenizer } from "../src/tune/BaseTraining.ts"
import { makeCheckpoint } from "./checkpoints.ts"
import { type Benchmark, intOption, listOption, machineInfo, progress, round } from "./common.ts"

const defaultLadder = ["tiny-1m", "small-8m", "smollm2-135m", "qwen2.5-0.5b", "qwen2.5-1.5b"]
const defaultStages = ["inspect", "generate", "prune", "eval", "adapter-step"]

interface StageResult {
  readonly seconds: number
  readonly peakRssBytes: number
  readonly exitCode: number
  readonly error?: string
  readonly stdout?: unknown
}

const here = new URL(".", import.meta.url).pathname

/** One simmer command in a process of its own, measured by that process. */
const measure = (args: ReadonlyArray<string>, timeoutSeconds: number): StageResult => {
  const out = join(here, `.measure-${process.pid}.json`)
  rmSync(out, { force: true })
  const child = spawnSync(process.execPath, [join(here, "measure.ts"), out, ...args], {
    encoding: "utf8",
    timeout: timeoutSeconds * 1000,
    maxBuffer: 256 * 2 ** 20
  })
  const measured = existsSync(out) ? JSON.parse(readFileSync(out, "utf8")) as StageResult : { seconds: NaN, peakRssBytes: NaN, exitCode: child.status ?? -1 }
  rmSync(out, { force: true })
  let stdout: unknown
  try {
    stdout = JSON.parse(child.stdout)
  } catch {
    stdout = undefined
  }
  const failed = child.status !== 0
  const lastError = child.stderr.split("\n").filter((l) => l.startsWith("simmer:") || l.includes("Error")).slice(-1)[0]
  return {
    ...measured,
    exitCode: child.status ?? -1,
    ...(failed ? { error: child.error?.message ?? lastError ?? `exit ${child.status}` } : {}),
    ...(stdout !== undefined ? { stdout } : {})
  }
}

/** Least-squares slope of log(y) on log(x): the exponent k of y ∝ xᵏ. */
export const fittedExponent = (points: ReadonlyArray<{ x: number; y: number }>): number | undefined => {
  const usable = points.filter((p) => p.x > 0 && p.y > 0 && Number.isFinite(p.y))
  if (usable.length < 2) return undefined
  const lx = usable.map((p) => Math.log(p.x))
  const ly = usable.map((p) => Math.log(p.y))
  const mx = lx.reduce((a, b) => a + b, 0) / lx.length
  const my = ly.reduce((a, b) => a + b, 0) / ly.length
  const sxy = lx.reduce((s, x, i) => s + (x - mx) * (ly[i] - my), 0)
  const sxx = lx.reduce((s, x) => s + (x - mx) ** 2, 0)
  return sxx === 0 ? undefined : sxy / sxx
}

const plotSvg = (rungs: ReadonlyArray<{ parameters: number; stages: Record<string, StageResult> }>, stages: ReadonlyArray<string>) =>
  lineChart({
    ariaLabel: "seconds per stage against parameters, log-log",
    x: { label: "parameters (log10)", format: (v) => `1e${round(v, 1)}` },
    y: { label: "seconds (log10)", format: (v) => (v >= 0 ? `${round(10 ** v, 1)}` : `${round(10 ** v, 2)}`) },
    series: stages.map((stage, i) => ({
      label: stage,
      color: palette[i % palette.length],
      marker: "circle" as const,
      points: rungs
        .filter((r) => r.stages[stage] !== undefined && r.stages[stage].exitCode === 0)
        .map((r) => ({ x: Math.log10(r.parameters), y: Math.log10(r.stages[stage].seconds), title: `${stage}: ${round(r.stages[stage].seconds)} s` }))
    })),
    emptyText: "no stage completed"
  })

export const scale: Benchmark = {
  summary: "time and peak RSS per stage (inspect, generate, prune, eval) along a ladder of real model shapes, with fitted exponents",
  usage: "scale [--ladder tiny-1m,small-8m,smollm2-135m,qwen2.5-0.5b,qwen2.5-1.5b] [--stages inspect,generate,prune,eval] " +
    "[--dir /tmp/simmer-scale] [--keep] [--eval-examples 32] [--timeout 1800] [--plot FILE.svg]",
  options: ["ladder", "stages", "dir", "keep", "eval-examples", "timeout", "plot"],
  run: async (options) => {
    const ladder = listOption(options, "ladder", defaultLadder)
    const stages = listOption(options, "stages", defaultStages)
    const root = options.get("dir") ?? "/tmp/simmer-scale"
    const keep = options.get("keep") === "true"
    const evalExamples = intOption(options, "eval-examples", 32)
    const timeout = intOption(options, "timeout", 1800)
    const tokenizer = baseTokenizer()
    const evalTokens = general({}, 1).take("test", evalExamples).reduce((n, e) => n + encodeExample(tokenizer, e).ids.length, 0)
    mkdirSync(root, { recursive: true })
    const machine = machineInfo()
    const rungs: Array<{
      shape: string
      parameters: number
      float32WeightBytes: number
      checkpointSeconds: number
      stages: Record<string, StageResult>
      evalTokensPerSecond?: number
    }> = []
    for (const shape of ladder) {
      const dir = join(root, shape)
      const made = existsSync(join(dir, "config.json"))
        ? { shape, dir, parameters: NaN, seconds: 0, reused: true }
        : await makeCheckpoint(shape, dir, 500_000_000)
      const inspected = measure(["inspect", dir, "--json", "--backend", "wasm"], timeout)
      const parameters = (inspected.stdout as { parameters?: { total: number } } | undefined)?.parameters?.total ?? made.parameters
      const results: Record<string, StageResult> = {}
      for (const stage of stages) {
        progress(`${shape}: ${stage}`)
        const args = stage === "inspect"
          ? ["inspect", dir, "--json"]
          : stage === "generate"
          ? ["generate", dir, "--ids", "5,17,9,23,11,30,7,12", "--max-new-tokens", "8", "--json"]
          : stage === "prune"
          ? ["prune", dir, "--out", `${dir}-pruned`, "--keep-units", "0.5", "--replace", "--json"]
          : stage === "eval"
          ? ["eval", dir, "--task", "general", "--examples", String(evalExamples), "--batch-size", "16", "--json"]
          : stage === "adapter-step"
          ? ["adapter-step", dir]
          : undefined
        if (args === undefined) throw new Error(`unknown stage ${stage} (known: ${defaultStages.join(", ")})`)
        const result = stage === "inspect"
          ? inspected
          : measure(stage === "adapter-step" ? args : [...args, "--backend", "wasm"], timeout)
        const { stdout, ...rest } = result
        results[stage] = {
          ...rest,
          ...(stage === "prune" && stdout !== undefined ? { stdout: pick(stdout, ["seconds", "scoreSeconds", "saveSeconds", "calibration"]) } : {}),
          ...(stage === "eval" && stdout !== undefined ? { stdout: pick(stdout, ["perplexity", "seconds", "examplesPerSecond"]) } : {}),
          ...(stage === "adapter-step" && stdout !== undefined ? { stdout } : {})
        }
        progress(`${shape}: ${stage} ${round(result.seconds)} s, peak RSS ${round(result.peakRssBytes / 2 ** 30, 2)} GiB` +
          (result.error !== undefined ? ` — ${result.error}` : ""))
      }
      rungs.push({
        shape,
        parameters,
        float32WeightBytes: parameters * 4,
        checkpointSeconds: made.seconds,
        stages: results,
        ...(results.eval?.exitCode === 0 ? { evalTokensPerSecond: round(evalTokens / results.eval.seconds) } : {})
      })
      if (!keep) rmSync(dir, { recursive: true, force: true })
      rmSync(`${dir}-pruned`, { recursive: true, force: true })
    }
    const exponents = Object.fromEntries(stages.map((stage) => [
      stage,
      fittedExponent(rungs.filter((r) => r.stages[stage]?.exitCode === 0).map((r) => ({ x: r.parameters, y: r.stages[stage].seconds })))
    ]))
    const plot = options.get("plot")
    if (plot !== undefined) writeFileSync(plot, plotSvg(rungs, stages))
    return { machine, evalExamples, evalTokens, rungs, timeExponents: exponents }
  }
}

const pick = (value: unknown, keys: ReadonlyArray<string>) =>
  Object.fromEntries(keys.filter((k) => typeof value === "object" && value !== null && k in value).map((k) => [k, (value as Record<string, unknown>)[k]]))
