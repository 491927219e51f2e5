/**
 * Compiling a WebAssembly module straight to V8's optimizing tier (TurboFan), skipping the
 * baseline compiler (Liftoff).
 *
 * Why: V8 compiles every module with Liftoff first and optimizes a function only after it has
 * run for a while, in the background; a call already running never switches (wasm has no
 * on-stack replacement). A generated matMul (Gemm.ts) is one function doing all of a product,
 * so the first product of each new shape runs entirely in baseline code — about 3× slower:
 * [928,576]·[576,36157]ᵀ took 2.7 s on its first call and 0.87 s after (2-core EPYC, Node 24).
 * One adapter step at the smollm2-135m shape calls its LM-head products once or twice, and a
 * batch of a new length meets new shapes everywhere. Optimizing up front costs ~1.5 ms more per
 * module, so the caller asks for it only for products large enough to repay that.
 *
 * How: the `--liftoff` and `--wasm-lazy-compilation` flags are read when a module is compiled,
 * and Node lets them be switched at run time (v8.setFlagsFromString; V8's flags are not frozen
 * in Node); both are switched off around the compile and back on (their defaults) after.
 * When node was started with a liftoff or lazy-compilation flag of its own (`node --liftoff ...`, as the
 * adapter-step-profile benchmark does to measure the old behaviour), that setting is left alone
 * and the module compiles as it says.
 */
import { setFlagsFromString } from "node:v8"
import { WebAssembly } from "./Assembler.ts"

const userChoseTier = process.execArgv.some((arg) => /liftoff|wasm-lazy-compilation/.test(arg))

/** The compiled module, optimized from its first call (unless the process fixed the tier itself). */
export const compileOptimized = (bytes: Uint8Array): object => {
  if (userChoseTier) return new WebAssembly.Module(bytes)
  // Eager as well as optimized: compiled lazily, the function would meet the flag restored at
  // its first call, and a module made without Liftoff never tiers up (measured: stuck ~3× slower).
  setFlagsFromString("--no-liftoff --no-wasm-lazy-compilation")
  try {
    return new WebAssembly.Module(bytes)
  } finally {
    setFlagsFromString("--liftoff --wasm-lazy-compilation")
  }
}
