import * as tf from "@tensorflow/tfjs"
import { setFlagsFromString } from "node:v8"
import { useBackend } from "./common.ts"
await useBackend("wasm")
const mode = process.argv[2]
const final = tf.randomNormal([928, 576]) as tf.Tensor2D
const t = (label: string, f: () => void) => { const s = performance.now(); f(); console.log(label, (performance.now() - s).toFixed(0), "ms") }
for (let rep = 0; rep < 2; rep++) {
  const rows = tf.randomNormal([36157 - rep, 576]) as tf.Tensor2D // a new problem each time
  let logits: tf.Tensor | undefined
  if (mode === "toggle") setFlagsFromString("--no-liftoff")
  t(`${mode} rep ${rep} matMul (new problem)`, () => { logits = tf.matMul(final, rows, false, true) })
  if (mode === "toggle") setFlagsFromString("--liftoff")
  t(`${mode} rep ${rep} matMul (same problem)`, () => { tf.dispose(tf.matMul(final, rows, false, true)) })
  tf.dispose([rows, logits!])
}
