/**
 * The three floating-point formats simmer reads and writes (safetensors names F32, F16, BF16)
 * and exact conversions between them and float32, the only dtype simmer computes in.
 *
 * float32 → F16 / BF16 rounds to nearest, ties to even, as PyTorch's `tensor.to(dtype)` does,
 * so a checkpoint we write in half precision is bit-identical to the one transformers would
 * write from the same float32 weights:
 * - finite values beyond the largest finite half value round to ±Inf (IEEE overflow), and
 *   values below half the smallest subnormal round to ±0 (sign kept);
 * - ±Inf stay ±Inf;
 * - NaN becomes PyTorch's canonical quiet NaN: F16 `sign | 0x7E00` (sign kept), BF16 `0x7FC0`
 *   (sign dropped), so payloads are not preserved.
 * F16 / BF16 → float32 is exact for every bit pattern (NaN stays NaN; BF16 keeps its bits).
 * F32 is copied bit for bit, NaN payloads included.
 */

export type Dtype = "F32" | "F16" | "BF16"

export const dtypes: ReadonlyArray<Dtype> = ["F32", "F16", "BF16"]

export const isDtype = (name: string): name is Dtype => name === "F32" || name === "F16" || name === "BF16"

/** Bytes per element. */
export const dtypeSize: Readonly<Record<Dtype, number>> = { F32: 4, F16: 2, BF16: 2 }

/** The name transformers writes as `torch_dtype` in config.json. */
export const torchDtypeName: Readonly<Record<Dtype, string>> = { F32: "float32", F16: "float16", BF16: "bfloat16" }

export const dtypeFromTorchName = (name: string): Dtype | undefined =>
  name === "float32" ? "F32" : name === "float16" ? "F16" : name === "bfloat16" ? "BF16" : undefined

// One shared scratch word to read the bits of a float32.
const scratchF32 = new Float32Array(1)
const scratchU32 = new Uint32Array(scratchF32.buffer)

/** The 32 bits of x rounded to float32. */
export const float32Bits = (x: number): number => {
  scratchF32[0] = x
  return scratchU32[0]
}

/** The float32 whose bits are `bits`. */
export const float32FromBits = (bits: number): number => {
  scratchU32[0] = bits >>> 0
  return scratchF32[0]
}

/** IEEE binary16 bits of float32(x), round to nearest even. */
export const float32ToFloat16Bits = (x: number): number => {
  const bits = float32Bits(x)
  const sign = (bits >>> 16) & 0x8000
  const exponent = (bits >>> 23) & 0xff
  const mantissa = bits & 0x7fffff
  if (exponent === 0xff) return mantissa === 0 ? sign | 0x7c00 : sign | 0x7e00
  // Exponent rebiased from 127 to 15.
  const e = exponent - 112
  if (e >= 0x1f) return sign | 0x7c00
  if (e <= 0) {
    // Below 2^-25 (half the smallest subnormal) everything rounds to zero; at exactly
    // 2^-25 (e = -10 with no mantissa) the tie goes to the even neighbour, zero, below.
    if (e < -10) return sign
    const full = mantissa | 0x800000
    const shift = 14 - e
    let half = full >>> shift
    const rest = full & ((1 << shift) - 1)
    const halfway = 1 << (shift - 1)
    if (rest > halfway || (rest === halfway && (half & 1) === 1)) half++
    // A carry into bit 10 yields 0x400, the smallest normal: still the right encoding.
    return sign | half
  }
  let half = (e << 10) | (mantissa >>> 13)
  const rest = mantissa & 0x1fff
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++
  // A carry out of the mantissa bumps the exponent; out of 0x7bff it lands on 0x7c00 = Inf.
  return sign | half
}

/** float32 value of IEEE binary16 bits (exact). */
export const float16BitsToFloat32 = (h: number): number => float32FromBits(float16BitsToFloat32Bits(h))

const float16BitsToFloat32Bits = (h: number): number => {
  const sign = (h & 0x8000) << 16
  const e = (h >>> 10) & 0x1f
  const m = h & 0x3ff
  if (e === 0x1f) return (sign | 0x7f800000 | (m << 13)) >>> 0
  if (e !== 0) return (sign | ((e + 112) << 23) | (m << 13)) >>> 0
  if (m === 0) return sign >>> 0
  // Subnormal: m · 2^-24 is exactly representable as a normal float32.
  return (sign | (float32Bits(m * 2 ** -24) & 0x7fffffff)) >>> 0
}

/** bfloat16 bits of float32(x), round to nearest even (PyTorch's round_to_nearest_even). */
export const float32ToBfloat16Bits = (x: number): number => {
  const bits = float32Bits(x)
  if ((bits & 0x7f800000) === 0x7f800000 && (bits & 0x7fffff) !== 0) return 0x7fc0
  const lsb = (bits >>> 16) & 1
  // Adding 0x7fff + lsb rounds the low half away exactly when it is above half, or at half
  // with an odd upper half; a carry into the exponent gives the next power of two or Inf.
  return ((bits + 0x7fff + lsb) >>> 16) & 0xffff
}

/** float32 value of bfloat16 bits (exact: bfloat16 is the top half of a float32). */
export const bfloat16BitsToFloat32 = (b: number): number => float32FromBits((b & 0xffff) << 16)

// The machine's byte order: typed-array views are used directly only on little-endian
// machines (every platform Node ships for except s390x); otherwise bytes go through DataView.
export const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1

let float16Table: Uint32Array | undefined
const float16ToFloat32Table = (): Uint32Array => {
  if (float16Table === undefined) {
    float16Table = new Uint32Array(65536)
    for (let h = 0; h < 65536; h++) float16Table[h] = float16BitsToFloat32Bits(h)
  }
  return float16Table
}

/**
 * Decodes little-endian `bytes` of the given dtype into a new Float32Array.
 * `bytes.length` must be a multiple of the dtype size.
 */
export const decodeTensor = (bytes: Uint8Array, dtype: Dtype): Float32Array => {
  const n = bytes.length / dtypeSize[dtype]
  const out = new Float32Array(n)
  if (dtype === "F32") {
    if (littleEndian) new Uint8Array(out.buffer).set(bytes)
    else {
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
      const outBits = new Uint32Array(out.buffer)
      for (let i = 0; i < n; i++) outBits[i] = view.getUint32(i * 4, true)
    }
    return out
  }
  const outBits = new Uint32Array(out.buffer)
  const halves = halfWords(bytes, n)
  if (dtype === "BF16") {
    for (let i = 0; i < n; i++) outBits[i] = halves[i] << 16
  } else {
    const table = float16ToFloat32Table()
    for (let i = 0; i < n; i++) outBits[i] = table[halves[i]]
  }
  return out
}

const halfWords = (bytes: Uint8Array, n: number): Uint16Array => {
  if (littleEndian && bytes.byteOffset % 2 === 0) return new Uint16Array(bytes.buffer, bytes.byteOffset, n)
  const halves = new Uint16Array(n)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  for (let i = 0; i < n; i++) halves[i] = view.getUint16(i * 2, true)
  return halves
}

/**
 * Encodes float32 values as little-endian bytes of the given dtype. For F32 on a
 * little-endian machine the result is a view of `data` (no copy): do not mutate either.
 */
export const encodeTensor = (data: Float32Array, dtype: Dtype): Uint8Array => {
  const n = data.length
  if (dtype === "F32") {
    if (littleEndian) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    const out = new Uint8Array(n * 4)
    const view = new DataView(out.buffer)
    const bits = new Uint32Array(data.buffer, data.byteOffset, n)
    for (let i = 0; i < n; i++) view.setUint32(i * 4, bits[i], true)
    return out
  }
  const halves = new Uint16Array(n)
  if (dtype === "BF16") {
    const bits = new Uint32Array(data.buffer, data.byteOffset, n)
    for (let i = 0; i < n; i++) {
      const b = bits[i]
      halves[i] = (b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0
        ? 0x7fc0
        : ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff
    }
  } else {
    for (let i = 0; i < n; i++) halves[i] = float32ToFloat16Bits(data[i])
  }
  if (littleEndian) return new Uint8Array(halves.buffer)
  const out = new Uint8Array(n * 2)
  const view = new DataView(out.buffer)
  for (let i = 0; i < n; i++) view.setUint16(i * 2, halves[i], true)
  return out
}
