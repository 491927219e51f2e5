/**
 * A BatchMatMul kernel for the tfjs wasm backend, generated as WebAssembly at run time.
 *
 * Why: tfjs-wasm 4.22 sends only batch-1, untransposed products to XNNPACK (built without
 * fused multiply-add, ~14-24 GFLOP/s here) and everything else — batched, transposeA or
 * transposeB — to a scalar loop (1-2 GFLOP/s). Attention is all batched products and every
 * backward product is transposed. This kernel uses WebAssembly relaxed-SIMD `f32x4.relaxed_madd`
 * (an FMA on x86 with FMA3, so twice XNNPACK's arithmetic per instruction), handles batches and
 * both transpose flags itself, and runs in the tfjs module's own memory (imported), so tensors
 * are read and written in place. Engines without relaxed SIMD (V8 before 11.4: Node 20) get the
 * same kernel with a multiply and an add.
 *
 * Each distinct problem (batch, M, N, K, transposes, broadcast) gets one specialised function
 * (a few KiB): every stride is a constant, so operands are addressed with constant offsets
 * from one pointer. Generating and compiling one takes ~0.2-2 ms, once per problem (cached,
 * least recently used evicted): a training run meets a few dozen problems; decoding one new
 * key length per step until every length has been seen. Products below MIN_WORK multiply-adds
 * stay on the original kernel. Large products are compiled straight to V8's optimizing tier
 * (OptimizingCompile.ts): a first call in baseline code ran a large product ~3× slower.
 *
 * Micro-kernel: a 6×8 tile of C in 12 f32x4 accumulators; per k one row of an 8-wide panel of
 * B (two loads) and 6 broadcast loads of A, k unrolled by 4. B is packed panel by panel into a
 * cache-line-aligned scratch buffer on the wasm heap (either orientation); A is read in place,
 * except a transposed A with many rows, which is packed into row blocks first.
 *
 * Measured on the reference model's products (2-core Xeon, Node 24, `npm run bench -- kernels`):
 * 31-45 GFLOP/s for every product of a training step, against 14-27 GFLOP/s for tfjs-wasm's
 * XNNPACK path (plain 2-D only) and 1-2 GFLOP/s for its batched or transposed products.
 */
import * as tf from "@tensorflow/tfjs"
import { type Bytes, I32, moduleBytes, op, relaxedSimdSupported, V128, v128, type WasmMemory, WebAssembly } from "./Assembler.ts"
import { compileOptimized } from "./OptimizingCompile.ts"

// ---------------------------------------------------------------------------------------------
// The product.

/** One batched product C[b] = op(A[b]) · op(B[b]), all in float32 elements. */
export interface GemmProblem {
  readonly batch: number
  readonly m: number
  readonly n: number
  readonly k: number
  readonly transposeA: boolean
  readonly transposeB: boolean
  /** Elements between consecutive batch items of A (0 broadcasts one matrix). */
  readonly batchStrideA: number
  readonly batchStrideB: number
}

/** Rows of C per micro-kernel tile (2·MR accumulators + 3 registers ≤ 16 xmm registers). */
const MR = 6
const NR = 8
/** Unrolling of the k loop. */
const UNROLL = 4

// Parameters and locals of the generated function.
const P_A = 0
const P_B = 1
const P_C = 2
const P_SCRATCH = 3
const L_BATCH = 4
const L_PANEL = 5 // full panels left
const L_BLOCK = 6 // full row blocks left
const L_K = 7
const L_PA = 8 // A pointer inside the k loop
const L_PB = 9 // B pointer inside the k loop
const L_ROWA = 10 // A at the current row block
const L_ROWC = 11 // C at the current tile
const L_PANELB = 12 // current panel of B (in place or packed)
const L_PANELC = 13 // C at the current panel's first row
const L_SRC = 14 // packing: source pointer
const L_DST = 15 // packing: destination pointer
const I32_LOCALS = 12
const V_B0 = 4 + I32_LOCALS
const V_B1 = V_B0 + 1
const V_A = V_B0 + 2
const vAcc = (row: number, half: number) => V_B0 + 3 + row * 2 + half
const V128_LOCALS = 3 + MR * 2

/**
 * A transposed A is read down its columns: k-steps m·4 bytes apart, which for m ≥ 256 land in
 * few cache sets (Xᵀ·dY of the down projection, m 512 and k 1024, ran at ~21 GFLOP/s in place,
 * 38 packed). Such an A is first copied into row blocks [⌈m/MR⌉][k][MR]. For m ≤ 192 packing
 * measured the same or slower (64×64 attention blocks: 3× slower).
 */
const packsA = (p: GemmProblem): boolean => p.transposeA && p.m >= 256 && p.k >= 128

/** Scratch layout: the packed panel of B (k·8 floats), then the packed A when packsA. */
const packedAOffset = (p: GemmProblem): number => (p.k * NR * 4 + 63) & ~63

const scratchBytes = (p: GemmProblem): number =>
  packedAOffset(p) + (packsA(p) ? Math.ceil(p.m / MR) * p.k * MR * 4 : 0)

const generate = (p: GemmProblem, fma: boolean): Uint8Array => {
  const { m, n, k } = p
  const packA = packsA(p)
  const aOffset = packedAOffset(p)
  // Byte strides of op(A)[row, kk] and op(A)[row, kk + 1] as read by the tiles.
  const aRow = packA ? 4 : p.transposeA ? 4 : k * 4
  const aK = packA ? MR * 4 : p.transposeA ? m * 4 : 4
  // From one row block of A to the next.
  const aBlock = packA ? k * MR * 4 : MR * aRow
  const cRow = n * 4
  const fullPanels = Math.floor(n / NR)
  const edgeCols = n % NR
  const fullBlocks = Math.floor(m / MR)
  const edgeRows = m % MR
  // Packed panels of B: 8 floats per kk.
  const bK = NR * 4

  const madd = (x: number, acc: number): Bytes =>
    fma
      ? [...op.get(x), ...op.get(acc), ...v128.fmadd, ...op.set(acc)]
      : [...v128.fmul, ...op.get(acc), ...v128.fadd, ...op.set(acc)]

  /** Loads `lanes` (1..4) floats at pointer+offset into a vector; the rest of the lanes are zero. */
  const partialLoad = (pointer: number, offset: number, lanes: number): Bytes => {
    switch (lanes) {
      case 4:
        return [...op.get(pointer), ...v128.load(offset)]
      case 1:
        return [...op.get(pointer), ...v128.load32Zero(offset)]
      case 2:
        return [...op.get(pointer), ...v128.load64Zero(offset)]
      default: {
        // 3 lanes: two by a 64-bit load, the third into lane 2
        const tmp = V_A
        return [
          ...op.get(pointer), ...v128.load64Zero(offset), ...op.set(tmp),
          ...op.get(pointer), ...op.get(tmp), ...v128.load32Lane(offset + 8, 2)
        ]
      }
    }
  }

  const partialStore = (pointer: number, offset: number, value: number, lanes: number): Bytes => {
    switch (lanes) {
      case 4:
        return [...op.get(pointer), ...op.get(value), ...v128.store(offset)]
      case 1:
        return [...op.get(pointer), ...op.get(value), ...v128.store32Lane(offset, 0)]
      case 2:
        return [...op.get(pointer), ...op.get(value), ...v128.store64Lane(offset, 0)]
      default:
        return [
          ...op.get(pointer), ...op.get(value), ...v128.store64Lane(offset, 0),
          ...op.get(pointer), ...op.get(value), ...v128.store32Lane(offset + 8, 2)
        ]
    }
  }

  /**
   * One tile: rows × cols of C at L_ROWC from A at L_ROWA and the packed panel in scratch.
   */
  const tile = (rows: number, cols: number): Bytes => {
    const halves = cols > 4 ? 2 : 1
    const lanes = (h: number) => Math.min(4, cols - h * 4)
    const step = (u: number): Bytes => {
      const out: Bytes = []
      for (let h = 0; h < halves; h++) {
        out.push(
          ...op.get(L_PB), ...v128.load(u * bK + h * 16),
          ...op.set(h === 0 ? V_B0 : V_B1)
        )
      }
      for (let r = 0; r < rows; r++) {
        out.push(...op.get(L_PA), ...v128.splat32(u * aK + r * aRow))
        if (halves === 2) {
          out.push(...op.tee(V_A))
          out.push(...(fma ? [] : op.get(V_B0)), ...madd(V_B0, vAcc(r, 0)))
          out.push(...op.get(V_A))
          out.push(...(fma ? [] : op.get(V_B1)), ...madd(V_B1, vAcc(r, 1)))
        } else {
          out.push(...(fma ? [] : op.get(V_B0)), ...madd(V_B0, vAcc(r, 0)))
        }
      }
      return out
    }
    const out: Bytes = []
    for (let r = 0; r < rows; r++) for (let h = 0; h < halves; h++) out.push(...v128.zero, ...op.set(vAcc(r, h)))
    out.push(...op.get(L_ROWA), ...op.set(L_PA), ...op.get(P_SCRATCH), ...op.set(L_PB))
    const rounds = Math.floor(k / UNROLL)
    if (rounds > 0) {
      const body: Bytes = []
      for (let u = 0; u < UNROLL; u++) body.push(...step(u))
      body.push(
        ...op.get(L_PA), ...op.i32(UNROLL * aK), ...op.add, ...op.set(L_PA),
        ...op.get(L_PB), ...op.i32(UNROLL * bK), ...op.add, ...op.set(L_PB),
        ...op.get(L_K), ...op.i32(1), ...op.sub, ...op.tee(L_K), ...op.brIf(0)
      )
      out.push(...op.i32(rounds), ...op.set(L_K), ...op.loop(body))
    }
    for (let u = 0; u < k % UNROLL; u++) out.push(...step(u))
    for (let r = 0; r < rows; r++) {
      for (let h = 0; h < halves; h++) out.push(...partialStore(L_ROWC, r * cRow + h * 16, vAcc(r, h), lanes(h)))
    }
    return out
  }

  /** All row blocks of one panel (C at L_PANELC, B packed in scratch). */
  const panel = (cols: number): Bytes => {
    const out: Bytes = [
      ...(packA ? [...op.get(P_SCRATCH), ...op.i32(aOffset), ...op.add] : op.get(P_A)), ...op.set(L_ROWA),
      ...op.get(L_PANELC), ...op.set(L_ROWC)
    ]
    const advance = [
      ...op.get(L_ROWA), ...op.i32(aBlock), ...op.add, ...op.set(L_ROWA),
      ...op.get(L_ROWC), ...op.i32(MR * cRow), ...op.add, ...op.set(L_ROWC)
    ]
    if (fullBlocks > 0) {
      out.push(
        ...op.i32(fullBlocks), ...op.set(L_BLOCK),
        ...op.loop([
          ...tile(MR, cols),
          ...advance,
          ...op.get(L_BLOCK), ...op.i32(1), ...op.sub, ...op.tee(L_BLOCK), ...op.brIf(0)
        ])
      )
    }
    if (edgeRows > 0) out.push(...tile(edgeRows, cols))
    return out
  }

  /**
   * Packs `cols` columns of op(B) starting at L_SRC into scratch as [k][8] (contiguous, so a
   * panel stays in L1 however wide B is: in place, rows of B 2 KiB apart share two cache sets).
   * Untransposed B: row kk of the panel is cols contiguous floats at L_SRC + kk·n·4.
   * Transposed B (stored [n, k]): column c of op(B) is row c of the storage.
   */
  const pack = (cols: number): Bytes => {
    const body: Bytes = []
    if (!p.transposeB) {
      for (let h = 0; h < (cols > 4 ? 2 : 1); h++) {
        body.push(...op.get(L_DST), ...partialLoad(L_SRC, h * 16, Math.min(4, cols - h * 4)), ...v128.store(h * 16))
      }
    } else {
      for (let c = 0; c < cols; c++) {
        body.push(...op.get(L_DST), ...op.get(L_SRC), ...op.f32Load(c * k * 4), ...op.f32Store(c * 4))
      }
    }
    body.push(
      ...op.get(L_SRC), ...op.i32(p.transposeB ? 4 : n * 4), ...op.add, ...op.set(L_SRC),
      ...op.get(L_DST), ...op.i32(NR * 4), ...op.add, ...op.set(L_DST),
      ...op.get(L_K), ...op.i32(1), ...op.sub, ...op.tee(L_K), ...op.brIf(0)
    )
    return [
      ...op.get(L_PANELB), ...op.set(L_SRC), ...op.get(P_SCRATCH), ...op.set(L_DST),
      ...op.i32(k), ...op.set(L_K), ...op.loop(body)
    ]
  }

  const panelAt = (cols: number): Bytes => [...pack(cols), ...panel(cols)]

  /**
   * Copies A (stored [k, m]) into scratch as row blocks [⌈m/MR⌉][k][MR]: per block and kk,
   * MR contiguous floats of row kk (fewer, zero-filled, in the last block).
   */
  const packAllOfA = (): Bytes => {
    const block = (rows: number): Bytes => {
      const body: Bytes = [
        ...op.get(L_DST), ...partialLoad(L_SRC, 0, Math.min(4, rows)), ...v128.store(0),
        ...(rows > 4 ? [...op.get(L_DST), ...partialLoad(L_SRC, 16, rows - 4), ...v128.store64Lane(16, 0)] : []),
        ...op.get(L_SRC), ...op.i32(m * 4), ...op.add, ...op.set(L_SRC),
        ...op.get(L_DST), ...op.i32(MR * 4), ...op.add, ...op.set(L_DST),
        ...op.get(L_K), ...op.i32(1), ...op.sub, ...op.tee(L_K), ...op.brIf(0)
      ]
      return [
        ...op.get(L_ROWA), ...op.set(L_SRC), ...op.i32(k), ...op.set(L_K), ...op.loop(body),
        ...op.get(L_ROWA), ...op.i32(MR * 4), ...op.add, ...op.set(L_ROWA)
      ]
    }
    const out: Bytes = [
      ...op.get(P_A), ...op.set(L_ROWA),
      ...op.get(P_SCRATCH), ...op.i32(aOffset), ...op.add, ...op.set(L_DST)
    ]
    if (fullBlocks > 0) {
      out.push(
        ...op.i32(fullBlocks), ...op.set(L_BLOCK),
        ...op.loop([...block(MR), ...op.get(L_BLOCK), ...op.i32(1), ...op.sub, ...op.tee(L_BLOCK), ...op.brIf(0)])
      )
    }
    if (edgeRows > 0) out.push(...block(edgeRows))
    return out
  }

  // One batch item: panels left to right; P_A, P_B, P_C point at its matrices. L_PANELB is
  // the current panel of B as stored, L_PANELC the current panel of C.
  const item: Bytes = [
    ...(packA ? packAllOfA() : []),
    ...op.get(P_B), ...op.set(L_PANELB), ...op.get(P_C), ...op.set(L_PANELC)
  ]
  const nextPanel = [
    ...op.get(L_PANELB), ...op.i32(p.transposeB ? NR * k * 4 : NR * 4), ...op.add, ...op.set(L_PANELB),
    ...op.get(L_PANELC), ...op.i32(NR * 4), ...op.add, ...op.set(L_PANELC)
  ]
  if (fullPanels > 0) {
    item.push(
      ...op.i32(fullPanels), ...op.set(L_PANEL),
      ...op.loop([
        ...panelAt(NR),
        ...nextPanel,
        ...op.get(L_PANEL), ...op.i32(1), ...op.sub, ...op.tee(L_PANEL), ...op.brIf(0)
      ])
    )
  }
  if (edgeCols > 0) item.push(...panelAt(edgeCols))

  const body: Bytes = [
    ...op.i32(p.batch), ...op.set(L_BATCH),
    ...op.loop([
      ...item,
      ...op.get(P_A), ...op.i32(p.batchStrideA * 4), ...op.add, ...op.set(P_A),
      ...op.get(P_B), ...op.i32(p.batchStrideB * 4), ...op.add, ...op.set(P_B),
      ...op.get(P_C), ...op.i32(m * n * 4), ...op.add, ...op.set(P_C),
      ...op.get(L_BATCH), ...op.i32(1), ...op.sub, ...op.tee(L_BATCH), ...op.brIf(0)
    ])
  ]
  return moduleBytes(4, [[I32_LOCALS, I32], [V128_LOCALS, V128]], body)
}

// ---------------------------------------------------------------------------------------------
// The kernel.

interface WasmModuleLike {
  readonly asm: { readonly memory: WasmMemory }
  _malloc(bytes: number): number
  _free(pointer: number): void
}

interface WasmBackendLike {
  readonly wasm: WasmModuleLike
  makeOutput(shape: Array<number>, dtype: tf.DataType): tf.TensorInfo
  getMemoryOffset(dataId: tf.DataId): number
}

type Run = (a: number, b: number, c: number, scratch: number) => void

/** Compiled functions kept (least recently used dropped first); each is a few KiB of code. */
const MAX_COMPILED = 1024

/**
 * Products of at least this many multiply-adds are compiled optimized from the start
 * (OptimizingCompile.ts): baseline code would cost them more than the ~1.5 ms the optimizing
 * compile adds (measured 3.0 against 1.45 ms per module; at ~8 against ~25 G multiply-adds/s,
 * 2^24 of them run ~1.4 ms longer in baseline code). Smaller ones, such as decoding's
 * attention at each new key length, keep the quick compile.
 */
export const OPTIMIZE_FIRST_WORK = 2 ** 24

/** Compiled products by problem, and a scratch buffer for packed panels of B. */
export class GemmKernels {
  readonly fma: boolean
  private readonly cache = new Map<string, Run>()
  private scratch = 0
  private scratchBlock = 0
  private scratchBytes = 0
  private readonly memory: WasmMemory
  private readonly module: WasmModuleLike

  /** Problems of at least this many multiply-adds are compiled optimized (Infinity: none). */
  readonly optimizeFirstWork: number

  constructor(module: WasmModuleLike, fma = relaxedSimdSupported(), optimizeFirstWork = OPTIMIZE_FIRST_WORK) {
    this.module = module
    this.memory = module.asm.memory
    this.fma = fma
    this.optimizeFirstWork = optimizeFirstWork
  }

  /** True when this set runs in that module's memory. */
  serves(module: WasmModuleLike): boolean {
    return module === this.module
  }

  /** Compiled functions so far (one per distinct problem). */
  get compiled(): number {
    return this.cache.size
  }

  private compile(p: GemmProblem): Run {
    const key = `${p.batch},${p.m},${p.n},${p.k},${+p.transposeA},${+p.transposeB},${p.batchStrideA},${p.batchStrideB}`
    let run = this.cache.get(key)
    if (run !== undefined) {
      // Most recently used last: the Map's order is the eviction order.
      this.cache.delete(key)
      this.cache.set(key, run)
      return run
    }
    const bytes = generate(p, this.fma)
    const optimize = p.batch * p.m * p.n * p.k >= this.optimizeFirstWork
    const instance = new WebAssembly.Instance(optimize ? compileOptimized(bytes) : new WebAssembly.Module(bytes), {
      env: { memory: this.memory }
    })
    run = instance.exports.run as Run
    this.cache.set(key, run)
    // Decoding meets a new key length every step; keep the cache bounded.
    if (this.cache.size > MAX_COMPILED) this.cache.delete(this.cache.keys().next().value as string)
    return run
  }

  /** C = op(A)·op(B) for matrices already on the wasm heap (byte addresses). */
  run(p: GemmProblem, a: number, b: number, c: number): void {
    const run = this.compile(p)
    const needed = scratchBytes(p)
    if (needed > this.scratchBytes) {
      if (this.scratchBlock !== 0) this.module._free(this.scratchBlock)
      this.scratchBytes = Math.max(needed, 64 * 1024)
      // Cache-line aligned: a packed row of 8 floats must never straddle two lines.
      this.scratchBlock = this.module._malloc(this.scratchBytes + 64)
      this.scratch = (this.scratchBlock + 63) & ~63
    }
    run(a, b, c, this.scratch)
  }
}

/** Products below this many multiply-adds stay on the original kernel (not worth a compile). */
const MIN_WORK = 16 * 1024

let installed: { kernels?: GemmKernels } | undefined
let originalConfig: tf.KernelConfig | undefined

/** tfjs-wasm's own BatchMatMul as registered before the replacement (for benchmarks). */
export const originalBatchMatMul = (): tf.KernelConfig => {
  if (originalConfig === undefined) throw new Error("the generated BatchMatMul is not registered")
  return originalConfig
}

/**
 * Replaces the wasm backend's BatchMatMul with the generated kernel (falling back to the
 * original for non-float32 inputs, general broadcasting and tiny products). Call once the
 * wasm backend package is imported (before or after the backend initialises); idempotent.
 * Returns a handle whose `kernels` appears with the first product.
 */
export const registerWasmGemm = (): { readonly kernels?: GemmKernels } | undefined => {
  if (installed !== undefined) return installed
  const original = tf.getKernel("BatchMatMul", "wasm")
  if (original === undefined) return undefined
  originalConfig = { ...original }
  const state: { kernels?: GemmKernels } = {}
  const kernelFunc: tf.KernelFunc = (args) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo }
    const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean }
    const be = args.backend as unknown as WasmBackendLike
    const ra = a.shape.length
    const rb = b.shape.length
    const m = transposeA ? a.shape[ra - 1] : a.shape[ra - 2]
    const k = transposeA ? a.shape[ra - 2] : a.shape[ra - 1]
    const kb = transposeB ? b.shape[rb - 1] : b.shape[rb - 2]
    const n = transposeB ? b.shape[rb - 2] : b.shape[rb - 1]
    const batchDimsA = a.shape.slice(0, -2)
    const batchDimsB = b.shape.slice(0, -2)
    const batchA = batchDimsA.reduce((x, y) => x * y, 1)
    const batchB = batchDimsB.reduce((x, y) => x * y, 1)
    const outBatchDims = tf.broadcast_util.assertAndGetBroadcastShape(batchDimsA, batchDimsB)
    const batch = outBatchDims.reduce((x, y) => x * y, 1)
    // Each operand is either one matrix for all items or one per item in the output's order.
    const simpleBroadcast = (batchA === 1 || batchA === batch) && (batchB === 1 || batchB === batch)
    if (
      a.dtype !== "float32" || b.dtype !== "float32" || k !== kb || !simpleBroadcast ||
      batch * m * n * k < MIN_WORK || m * n === 0 || k === 0
    ) {
      return original.kernelFunc(args)
    }
    // One set per wasm module (a re-created backend brings a new module and memory).
    if (state.kernels === undefined || !state.kernels.serves(be.wasm)) state.kernels = new GemmKernels(be.wasm)
    const out = be.makeOutput([...outBatchDims, m, n], "float32")
    state.kernels.run(
      {
        batch,
        m,
        n,
        k,
        transposeA,
        transposeB,
        batchStrideA: batchA === 1 ? 0 : m * k,
        batchStrideB: batchB === 1 ? 0 : k * n
      },
      be.getMemoryOffset(a.dataId),
      be.getMemoryOffset(b.dataId),
      be.getMemoryOffset(out.dataId)
    )
    return out
  }
  tf.unregisterKernel("BatchMatMul", "wasm")
  // The original's setup (binding its wasm export) runs when the backend initialises, which
  // may be after this registration; it must stay attached for the fallback to work.
  tf.registerKernel({ kernelName: "BatchMatMul", backendName: "wasm", kernelFunc, setupFunc: original.setupFunc })
  installed = state
  return state
}
