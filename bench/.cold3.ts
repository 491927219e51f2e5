import * as tf from "@tensorflow/tfjs"
import { setFlagsFromString } from "node:v8"
import { useBackend } from "./common.ts"
await useBackend("wasm")
for (const mode of ["liftoff", "turbofan", "liftoff", "turbofan"]) {
  const xs = Array.from({ length: 20 }, (_, i) => [tf.randomNormal([32 + i + (mode === "turbofan" ? 40 : 0) + Math.random() * 1000 | 0, 64]), tf.randomNormal([64, 48])])
  if (mode === "turbofan") setFlagsFromString("--no-liftoff")
  const s = performance.now()
  for (const [a, b] of xs) tf.dispose(tf.matMul(a, b))
  const ms = (performance.now() - s) / xs.length
  setFlagsFromString("--liftoff")
  console.log(mode, "ms per new small problem (compile + tiny run):", ms.toFixed(2))
}
