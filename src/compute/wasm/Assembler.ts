/**
 * A tiny WebAssembly assembler, just what simmer's generated wasm kernels need (Gemm.ts,
 * compute/wasm/Fused.ts): LEB128, a one-function module importing the tfjs module's memory, and
 * the handful of scalar and SIMD instructions the kernels use.
 */

// The project compiles against ES2023 + Node types, which do not declare WebAssembly.
export interface WasmMemory {
  readonly buffer: ArrayBuffer
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean
  Module: new(bytes: Uint8Array) => object
  Instance: new(module: object, imports: object) => { readonly exports: Record<string, unknown> }
}
export const WebAssembly = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly

export type Bytes = Array<number>

const uleb = (n: number): Bytes => {
  const out: Bytes = []
  do {
    let b = n & 0x7f
    n >>>= 7
    if (n !== 0) b |= 0x80
    out.push(b)
  } while (n !== 0)
  return out
}

const sleb = (n: number): Bytes => {
  const out: Bytes = []
  for (;;) {
    const b = n & 0x7f
    n >>= 7
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b)
      return out
    }
    out.push(b | 0x80)
  }
}

const name = (s: string): Bytes => [...uleb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))]
const vector = (items: ReadonlyArray<Bytes>): Bytes => [...uleb(items.length), ...items.flat()]
const section = (id: number, body: Bytes): Bytes => [id, ...uleb(body.length), ...body]

export const I32 = 0x7f
export const F32 = 0x7d
export const V128 = 0x7b

export const op = {
  get: (i: number): Bytes => [0x20, ...uleb(i)],
  set: (i: number): Bytes => [0x21, ...uleb(i)],
  tee: (i: number): Bytes => [0x22, ...uleb(i)],
  i32: (n: number): Bytes => [0x41, ...sleb(n | 0)],
  add: [0x6a],
  sub: [0x6b],
  eqz: [0x45],
  loop: (body: Bytes): Bytes => [0x03, 0x40, ...body, 0x0b],
  block: (body: Bytes): Bytes => [0x02, 0x40, ...body, 0x0b],
  brIf: (depth: number): Bytes => [0x0d, ...uleb(depth)],
  f32: (x: number): Bytes => [0x43, ...new Uint8Array(new Float32Array([x]).buffer)],
  fadd: [0x92],
  fsub: [0x93],
  fmul: [0x94],
  fdiv: [0x95],
  fsqrt: [0x91],
  f32Load: (offset: number): Bytes => [0x2a, 2, ...uleb(offset)],
  f32Store: (offset: number): Bytes => [0x38, 2, ...uleb(offset)],
  simd: (code: number, ...immediates: Bytes): Bytes => [0xfd, ...uleb(code), ...immediates]
}

export const v128 = {
  load: (offset: number) => op.simd(0x00, 4, ...uleb(offset)),
  splat32: (offset: number) => op.simd(0x09, 2, ...uleb(offset)),
  store: (offset: number) => op.simd(0x0b, 4, ...uleb(offset)),
  load32Zero: (offset: number) => op.simd(0x5c, 2, ...uleb(offset)),
  load64Zero: (offset: number) => op.simd(0x5d, 3, ...uleb(offset)),
  load32Lane: (offset: number, lane: number) => op.simd(0x56, 2, ...uleb(offset), lane),
  store32Lane: (offset: number, lane: number) => op.simd(0x5a, 2, ...uleb(offset), lane),
  store64Lane: (offset: number, lane: number) => op.simd(0x5b, 3, ...uleb(offset), lane),
  zero: op.simd(0x0c, ...new Array<number>(16).fill(0)),
  /** f32 on the stack → all four lanes. */
  splat: op.simd(0x13),
  lane: (lane: number) => op.simd(0x1f, lane),
  fmul: op.simd(0xe6),
  fadd: op.simd(0xe4),
  fsub: op.simd(0xe5),
  /** relaxed_madd(a, b, c) = a·b + c, fused where the CPU has FMA. */
  fmadd: op.simd(0x105)
}

/** A module importing env.memory and exporting one function "run" with i32 parameters. */
export const moduleBytes = (params: number, locals: ReadonlyArray<[number, number]>, body: Bytes): Uint8Array => {
  const code = [...vector(locals.map(([count, type]) => [...uleb(count), type])), ...body, 0x0b]
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, vector([[0x60, ...vector(new Array<Bytes>(params).fill([I32])), 0x00]])),
    ...section(2, vector([[...name("env"), ...name("memory"), 0x02, 0x00, 0x00]])),
    ...section(3, vector([[0x00]])),
    ...section(7, vector([[...name("run"), 0x00, 0x00]])),
    ...section(10, vector([[...uleb(code.length), ...code]]))
  ])
}

/** True when this engine validates relaxed-SIMD FMA (V8 ≥ 11.4: Node 22+; not Node 20). */
export const relaxedSimdSupported = (): boolean => {
  try {
    const body = [...v128.zero, ...v128.zero, ...v128.zero, ...v128.fmadd, 0x1a /* drop */]
    return WebAssembly.validate(moduleBytes(0, [], body))
  } catch {
    return false
  }
}

/**
 * `count` times `body`, with `counter` (an i32 local) counting down; nothing when `count` is
 * a compile-time 0, a guard when it is only known at run time (the loop runs at least once).
 */
export const repeat = (counter: number, count: number | Bytes, body: Bytes): Bytes => {
  if (typeof count === "number" && count <= 0) return []
  const loop = op.loop([...body, ...op.get(counter), ...op.i32(1), ...op.sub, ...op.tee(counter), ...op.brIf(0)])
  if (typeof count === "number") return [...op.i32(count), ...op.set(counter), ...loop]
  return op.block([...count, ...op.tee(counter), ...op.eqz, ...op.brIf(0), ...loop])
}

/** pointer += bytes, for an i32 local. */
export const advance = (pointer: number, bytes: number): Bytes =>
  [...op.get(pointer), ...op.i32(bytes), ...op.add, ...op.set(pointer)]

/** Compiles and instantiates a module in the given memory and returns its exported "run". */
export const instantiate = <F>(bytes: Uint8Array, memory: WasmMemory): F =>
  new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } }).exports.run as F
