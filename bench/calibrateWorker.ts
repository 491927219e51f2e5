/**
 * Worker entry of the machine calibration (common.ts): initialises the wasm backend, then times
 * one matrix product of the reference model's shape for a fixed wall time and reports GFLOP/s.
 */
import * as tf from "@tensorflow/tfjs"
import { parentPort, workerData } from "node:worker_threads"
import { median, useBackend } from "./common.ts"

const { ms } = workerData as { ms: number }
await useBackend("wasm")
const a = tf.randomNormal([1024, 128])
const b = tf.randomNormal([128, 512])
for (let i = 0; i < 5; i++) tf.matMul(a, b).dispose()
// Start together with the other workers: wait for the go signal.
parentPort!.postMessage({ ready: true })
parentPort!.once("message", () => {
  const times: Array<number> = []
  const end = performance.now() + ms
  while (performance.now() < end) {
    const started = performance.now()
    tf.matMul(a, b).dispose()
    times.push(performance.now() - started)
  }
  parentPort!.postMessage({ gflops: (2 * 1024 * 128 * 512) / median(times) / 1e6 })
})
