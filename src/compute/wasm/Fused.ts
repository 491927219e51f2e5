/**
 * Fused wasm kernels for the transformer's memory-bound elementwise work (the kernel names and
 * their tfjs-op equivalents are in src/model/Transformer.ts, which uses a kernel when the active
 * backend registers it):
 *
 * - RMSNorm forward: y = x·r·w, n = x·r, r = 1/√(mean(x²) + eps), one row at a time
 *   (6 tfjs ops, each a pass over [N, D], become one kernel reading each row twice).
 * - RMSNorm backward: dx = r·(g − n·mean(g·n)) with g = dy·w, and dw = Σ_rows dy·n (8 ops,
 *   one of them a column sum that tfjs-wasm runs as a transpose and a reduction).
 * - SwiGLU backward: d gate = dy·up·(s + a − a·s), d up = dy·a (6 ops, one pass).
 *
 * Generated with the same assembler as the matrix kernel, f32x4 over the row, a scalar tail
 * for sizes that are not a multiple of 4. Specialised on D (and eps) like the matrix kernel on
 * its shapes: a model has one or two.
 */
import * as tf from "@tensorflow/tfjs"
import { FusedKernels } from "../../model/Transformer.ts"
import {
  advance,
  type Bytes,
  F32,
  I32,
  instantiate,
  moduleBytes,
  op,
  relaxedSimdSupported,
  repeat,
  V128,
  v128,
  type WasmMemory
} from "./Assembler.ts"

interface WasmBackendLike {
  readonly wasm: { readonly asm: { readonly memory: WasmMemory } }
  makeOutput(shape: Array<number>, dtype: tf.DataType): tf.TensorInfo
  getMemoryOffset(dataId: tf.DataId): number
}

const fmaSupported = relaxedSimdSupported()

/** acc += x·y for vectors on the stack order (x, y) → sets acc. */
const vmuladd = (acc: number): Bytes =>
  fmaSupported
    ? [...op.get(acc), ...v128.fmadd, ...op.set(acc)]
    : [...v128.fmul, ...op.get(acc), ...v128.fadd, ...op.set(acc)]

/** Horizontal sum of a v128 local onto the stack as f32. */
const hsum = (vector: number): Bytes => [
  ...op.get(vector), ...v128.lane(0), ...op.get(vector), ...v128.lane(1), ...op.fadd,
  ...op.get(vector), ...v128.lane(2), ...op.fadd, ...op.get(vector), ...v128.lane(3), ...op.fadd
]

// ---- SwiGLU backward: run(dy, s, a, u, dg, du, quads, tail) ----

/** The instructions of one element width: four f32 lanes at once, or one. */
interface Lanes {
  readonly load: Bytes
  readonly store: Bytes
  readonly mul: Bytes
  readonly add: Bytes
  readonly sub: Bytes
  /** Bytes one step advances each pointer by. */
  readonly stride: number
}

const vectorLanes: Lanes = { load: v128.load(0), store: v128.store(0), mul: v128.fmul, add: v128.fadd, sub: v128.fsub, stride: 16 }
const scalarLanes: Lanes = { load: op.f32Load(0), store: op.f32Store(0), mul: op.fmul, add: op.fadd, sub: op.fsub, stride: 4 }

const swiGluGradModule = (): Uint8Array => {
  const [DY, S, A, U, DG, DU, QUADS, TAIL] = [0, 1, 2, 3, 4, 5, 6, 7]
  const COUNT = 8
  const pointers = [DY, S, A, U, DG, DU]
  /** One step over `l`'s width, holding dy, s and a in the locals `[ldy, ls, la]`. */
  const step = (l: Lanes, [LDY, LS, LA]: ReadonlyArray<number>): Bytes => [
    ...op.get(DY), ...l.load, ...op.set(LDY),
    ...op.get(S), ...l.load, ...op.set(LS),
    ...op.get(A), ...l.load, ...op.set(LA),
    // du = dy·a
    ...op.get(DU), ...op.get(LDY), ...op.get(LA), ...l.mul, ...l.store,
    // dg = (dy·u)·(s + a − a·s)
    ...op.get(DG),
    ...op.get(LDY), ...op.get(U), ...l.load, ...l.mul,
    ...op.get(LS), ...op.get(LA), ...l.add, ...op.get(LA), ...op.get(LS), ...l.mul, ...l.sub,
    ...l.mul, ...l.store,
    ...pointers.flatMap((p) => advance(p, l.stride))
  ]
  const body = [
    ...repeat(COUNT, op.get(QUADS), step(vectorLanes, [9, 10, 11])),
    ...repeat(COUNT, op.get(TAIL), step(scalarLanes, [12, 13, 14]))
  ]
  return moduleBytes(8, [[1, I32], [3, V128], [3, F32]], body)
}

// ---- RMSNorm forward: run(x, w, y, n, r, rows), specialised on d and eps ----

const rmsNormModule = (d: number, eps: number): Uint8Array => {
  const [X, W, Y, N, R, ROWS] = [0, 1, 2, 3, 4, 5]
  const [ROW, J, PX, PW, PY, PN] = [6, 7, 8, 9, 10, 11]
  const [ACC, VR] = [12, 13]
  const [F, FR] = [14, 15]
  const quads = d >> 2
  const tail = d & 3
  const row: Bytes = [
    // sum of squares
    ...v128.zero, ...op.set(ACC),
    ...op.get(X), ...op.set(PX),
    ...repeat(J, quads, [
      ...op.get(PX), ...v128.load(0), ...op.get(PX), ...v128.load(0), ...vmuladd(ACC),
      ...advance(PX, 16)
    ]),
    ...hsum(ACC), ...op.set(F),
    ...repeat(J, tail, [
      ...op.get(F), ...op.get(PX), ...op.f32Load(0), ...op.get(PX), ...op.f32Load(0), ...op.fmul, ...op.fadd, ...op.set(F),
      ...advance(PX, 4)
    ]),
    // r = 1 / sqrt(sum / d + eps)
    ...op.f32(1), ...op.get(F), ...op.f32(1 / d), ...op.fmul, ...op.f32(eps), ...op.fadd, ...op.fsqrt, ...op.fdiv,
    ...op.set(FR),
    ...op.get(R), ...op.get(FR), ...op.f32Store(0),
    ...op.get(FR), ...v128.splat, ...op.set(VR),
    // n = x·r, y = n·w
    ...op.get(X), ...op.set(PX), ...op.get(W), ...op.set(PW), ...op.get(Y), ...op.set(PY), ...op.get(N), ...op.set(PN),
    ...repeat(J, quads, [
      ...op.get(PN), ...op.get(PX), ...v128.load(0), ...op.get(VR), ...v128.fmul, ...op.set(ACC), ...op.get(ACC), ...v128.store(0),
      ...op.get(PY), ...op.get(ACC), ...op.get(PW), ...v128.load(0), ...v128.fmul, ...v128.store(0),
      ...advance(PX, 16), ...advance(PW, 16), ...advance(PY, 16), ...advance(PN, 16)
    ]),
    ...repeat(J, tail, [
      ...op.get(PN), ...op.get(PX), ...op.f32Load(0), ...op.get(FR), ...op.fmul, ...op.set(F), ...op.get(F), ...op.f32Store(0),
      ...op.get(PY), ...op.get(F), ...op.get(PW), ...op.f32Load(0), ...op.fmul, ...op.f32Store(0),
      ...advance(PX, 4), ...advance(PW, 4), ...advance(PY, 4), ...advance(PN, 4)
    ]),
    ...advance(X, d * 4), ...advance(Y, d * 4), ...advance(N, d * 4), ...advance(R, 4)
  ]
  return moduleBytes(6, [[6, I32], [2, V128], [2, F32]], repeat(ROW, op.get(ROWS), row))
}

// ---- RMSNorm backward: run(dy, n, r, w, dx, dw, rows), specialised on d ----

const rmsNormGradModule = (d: number): Uint8Array => {
  const [DY, N, R, W, DX, DW, ROWS] = [0, 1, 2, 3, 4, 5, 6]
  const [ROW, J, PDY, PN, PW, PDX, PDW] = [7, 8, 9, 10, 11, 12, 13]
  const [ACC, VDOT, VR, VG] = [14, 15, 16, 17]
  const [F, FR, FDOT] = [18, 19, 20]
  const quads = d >> 2
  const tail = d & 3
  const zeroDw: Bytes = [
    ...op.get(DW), ...op.set(PDW),
    ...repeat(J, quads, [...op.get(PDW), ...v128.zero, ...v128.store(0), ...advance(PDW, 16)]),
    ...repeat(J, tail, [...op.get(PDW), ...op.f32(0), ...op.f32Store(0), ...advance(PDW, 4)])
  ]
  const row: Bytes = [
    // dot = mean((dy·w)·n)
    ...v128.zero, ...op.set(ACC),
    ...op.get(DY), ...op.set(PDY), ...op.get(N), ...op.set(PN), ...op.get(W), ...op.set(PW),
    ...repeat(J, quads, [
      ...op.get(PDY), ...v128.load(0), ...op.get(PW), ...v128.load(0), ...v128.fmul, ...op.get(PN), ...v128.load(0), ...vmuladd(ACC),
      ...advance(PDY, 16), ...advance(PN, 16), ...advance(PW, 16)
    ]),
    ...hsum(ACC), ...op.set(F),
    ...repeat(J, tail, [
      ...op.get(F), ...op.get(PDY), ...op.f32Load(0), ...op.get(PW), ...op.f32Load(0), ...op.fmul,
      ...op.get(PN), ...op.f32Load(0), ...op.fmul, ...op.fadd, ...op.set(F),
      ...advance(PDY, 4), ...advance(PN, 4), ...advance(PW, 4)
    ]),
    ...op.get(F), ...op.f32(1 / d), ...op.fmul, ...op.set(FDOT),
    ...op.get(R), ...op.f32Load(0), ...op.set(FR),
    ...op.get(FDOT), ...v128.splat, ...op.set(VDOT), ...op.get(FR), ...v128.splat, ...op.set(VR),
    // dx = r·(dy·w − n·dot); dw += dy·n
    ...op.get(DY), ...op.set(PDY), ...op.get(N), ...op.set(PN), ...op.get(W), ...op.set(PW),
    ...op.get(DX), ...op.set(PDX), ...op.get(DW), ...op.set(PDW),
    ...repeat(J, quads, [
      ...op.get(PDY), ...v128.load(0), ...op.set(VG),
      ...op.get(PDX),
      ...op.get(VG), ...op.get(PW), ...v128.load(0), ...v128.fmul,
      ...op.get(PN), ...v128.load(0), ...op.get(VDOT), ...v128.fmul, ...v128.fsub,
      ...op.get(VR), ...v128.fmul, ...v128.store(0),
      ...op.get(PDW), ...op.get(PDW), ...v128.load(0), ...op.get(VG), ...op.get(PN), ...v128.load(0), ...v128.fmul, ...v128.fadd,
      ...v128.store(0),
      ...advance(PDY, 16), ...advance(PN, 16), ...advance(PW, 16), ...advance(PDX, 16), ...advance(PDW, 16)
    ]),
    ...repeat(J, tail, [
      ...op.get(PDY), ...op.f32Load(0), ...op.set(F),
      ...op.get(PDX),
      ...op.get(F), ...op.get(PW), ...op.f32Load(0), ...op.fmul,
      ...op.get(PN), ...op.f32Load(0), ...op.get(FDOT), ...op.fmul, ...op.fsub,
      ...op.get(FR), ...op.fmul, ...op.f32Store(0),
      ...op.get(PDW), ...op.get(PDW), ...op.f32Load(0), ...op.get(F), ...op.get(PN), ...op.f32Load(0), ...op.fmul, ...op.fadd,
      ...op.f32Store(0),
      ...advance(PDY, 4), ...advance(PN, 4), ...advance(PW, 4), ...advance(PDX, 4), ...advance(PDW, 4)
    ]),
    ...advance(DY, d * 4), ...advance(N, d * 4), ...advance(DX, d * 4), ...advance(R, 4)
  ]
  return moduleBytes(7, [[7, I32], [4, V128], [3, F32]], [...zeroDw, ...repeat(ROW, op.get(ROWS), row)])
}

// ---- kernels ----

type Run = (...pointers: Array<number>) => void

/** Compiled modules per wasm memory and specialisation. */
const compiled = new WeakMap<WasmMemory, Map<string, Run>>()

const runFor = (backend: WasmBackendLike, key: string, make: () => Uint8Array): Run => {
  const memory = backend.wasm.asm.memory
  let byKey = compiled.get(memory)
  if (byKey === undefined) compiled.set(memory, byKey = new Map())
  let run = byKey.get(key)
  if (run === undefined) byKey.set(key, run = instantiate<Run>(make(), memory))
  return run
}

const at = (backend: WasmBackendLike, t: tf.TensorInfo) => backend.getMemoryOffset(t.dataId)

const rmsNormKernel: tf.KernelFunc = ({ inputs, attrs, backend }) => {
  const be = backend as unknown as WasmBackendLike
  const { x, w } = inputs as { x: tf.TensorInfo; w: tf.TensorInfo }
  const eps = (attrs as unknown as { eps: number }).eps
  const [rows, d] = x.shape
  const y = be.makeOutput([rows, d], "float32")
  const n = be.makeOutput([rows, d], "float32")
  const r = be.makeOutput([rows, 1], "float32")
  runFor(be, `rms,${d},${eps}`, () => rmsNormModule(d, eps))(at(be, x), at(be, w), at(be, y), at(be, n), at(be, r), rows)
  return [y, n, r]
}

const rmsNormGradKernel: tf.KernelFunc = ({ inputs, backend }) => {
  const be = backend as unknown as WasmBackendLike
  const { dy, n, r, w } = inputs as Record<"dy" | "n" | "r" | "w", tf.TensorInfo>
  const [rows, d] = dy.shape
  const dx = be.makeOutput([rows, d], "float32")
  const dw = be.makeOutput([d], "float32")
  runFor(be, `rmsGrad,${d}`, () => rmsNormGradModule(d))(at(be, dy), at(be, n), at(be, r), at(be, w), at(be, dx), at(be, dw), rows)
  return [dx, dw]
}

const swiGluGradKernel: tf.KernelFunc = ({ inputs, backend }) => {
  const be = backend as unknown as WasmBackendLike
  const { dy, s, a, up } = inputs as Record<"dy" | "s" | "a" | "up", tf.TensorInfo>
  const dg = be.makeOutput([...dy.shape], "float32")
  const du = be.makeOutput([...dy.shape], "float32")
  const size = dy.shape.reduce((p, q) => p * q, 1)
  runFor(be, "swiGluGrad", swiGluGradModule)(at(be, dy), at(be, s), at(be, a), at(be, up), at(be, dg), at(be, du), size >> 2, size & 3)
  return [dg, du]
}

/** Registers the three kernels for wasm (idempotent). */
export const registerWasmFused = (): void => {
  const kernels: Array<[string, tf.KernelFunc]> = [
    [FusedKernels.rmsNorm, rmsNormKernel],
    [FusedKernels.rmsNormGrad, rmsNormGradKernel],
    [FusedKernels.swiGluGrad, swiGluGradKernel]
  ]
  for (const [kernelName, kernelFunc] of kernels) {
    if (tf.getKernel(kernelName, "wasm") === undefined) tf.registerKernel({ kernelName, backendName: "wasm", kernelFunc })
  }
}
