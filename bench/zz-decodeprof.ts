import { Effect } from "effect"
import { readdirSync, readFileSync } from "node:fs"
import { initParams } from "/work/main/src/model/Params.ts"
import { modelOnnx } from "/work/main/src/onnx/ModelGraph.ts"
import { openDecoderSession } from "/work/main/src/onnx/OrtDecoder.ts"
import { generateGreedyOrt } from "/work/main/src/onnx/OrtGenerate.ts"
import { referenceConfig } from "/work/main/bench/common.ts"
import { useBackend } from "/work/main/test/helpers/backend.ts"
await useBackend("cpu")
const config = referenceConfig
const params = initParams(config, 1)
const bytes = await Effect.runPromise(modelOnnx({ config, params }))
const prompts = Array.from({ length: 16 }, (_, b) => Array.from({ length: 16 }, (_, t) => 1 + ((b * 7 + t * 3) % 31)))
const plain = await openDecoderSession(bytes, { threads: 1 })
for (let i = 0; i < 3; i++) await generateGreedyOrt(plain, config, prompts, 48, [])
const times = []
for (let i = 0; i < 7; i++) { const t = performance.now(); await generateGreedyOrt(plain, config, prompts, 48, []); times.push(performance.now() - t) }
times.sort((a, b) => a - b)
console.log("median ms per call", times[3].toFixed(1), "tok/s", (768 / times[3] * 1000).toFixed(0))
const s = await openDecoderSession(bytes, { threads: 1, profilePrefix: "/tmp/prof/p" })
await generateGreedyOrt(s, config, prompts, 48, [])
s.endProfiling()
const f = readdirSync("/tmp/prof").filter((n) => n.startsWith("p_")).sort().pop()!
const ev = JSON.parse(readFileSync("/tmp/prof/" + f, "utf8"))
const by = new Map<string, { us: number; n: number }>()
let runUs = 0, runs = 0
for (const e of ev) {
  if (e.cat === "Session" && e.name === "model_run") { runUs += e.dur; runs++ }
  if (e.cat !== "Node" || !e.name.endsWith("_kernel_time")) continue
  const k = e.args.op_name
  const r = by.get(k) ?? { us: 0, n: 0 }
  r.us += e.dur; r.n++
  by.set(k, r)
}
const total = [...by.values()].reduce((a, r) => a + r.us, 0)
console.log("model_run", runs, "total us", runUs, "kernel us", total)
for (const [k, r] of [...by].sort((a, b) => b[1].us - a[1].us).slice(0, 25)) console.log(k.padEnd(20), r.n, r.us, (r.us / runs).toFixed(1))
