import { assert, describe, it } from "@effect/vitest"
import {
  bfloat16BitsToFloat32,
  decodeTensor,
  encodeTensor,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits
} from "../../src/io/Dtype.ts"

// Bits of float32(x), computed with DataView rather than the module under test.
const bitsOf = (x: number): number => {
  const view = new DataView(new ArrayBuffer(4))
  view.setFloat32(0, x)
  return view.getUint32(0)
}
const fromBits = (bits: number): number => {
  const view = new DataView(new ArrayBuffer(4))
  view.setUint32(0, bits)
  return view.getFloat32(0)
}

describe("float32 → float16 (round to nearest even)", () => {
  // [input, expected bits, why] — expected values worked out by hand from the binary16 layout.
  const cases: Array<[number, number, string]> = [
    [1, 0x3c00, "one"],
    [-2, 0xc000, "negative power of two"],
    [0, 0x0000, "+0"],
    [-0, 0x8000, "-0 keeps its sign"],
    [Infinity, 0x7c00, "+Inf"],
    [-Infinity, 0xfc00, "-Inf"],
    [65504, 0x7bff, "largest finite"],
    [65519, 0x7bff, "below the midpoint to 65536 rounds down to the largest finite"],
    [65520, 0x7c00, "the midpoint ties to even (exponent carry) = Inf"],
    [1e6, 0x7c00, "overflow to Inf"],
    [-1e6, 0xfc00, "negative overflow to -Inf"],
    [2 ** -24, 0x0001, "smallest subnormal"],
    [2 ** -25, 0x0000, "half the smallest subnormal ties to even = 0"],
    [3 * 2 ** -26, 0x0001, "above half the smallest subnormal rounds up"],
    [1.5 * 2 ** -24, 0x0002, "subnormal tie 1.5 → 2 (even)"],
    [2.5 * 2 ** -24, 0x0002, "subnormal tie 2.5 → 2 (even)"],
    [-(2 ** -26), 0x8000, "tiny negative underflows to -0"],
    [1023 * 2 ** -24, 0x03ff, "largest subnormal"],
    [2 ** -14, 0x0400, "smallest normal"],
    [1 + 2 ** -11, 0x3c00, "normal tie 1 + half ulp → 1 (even)"],
    [1 + 3 * 2 ** -11, 0x3c02, "normal tie 1 + 1.5 ulp → 1 + 2 ulp (even)"],
    [1 + 2 ** -11 + 2 ** -20, 0x3c01, "just above the tie rounds up"],
    [0.1, 0x2e66, "0.1"],
    [1 / 3, 0x3555, "1/3"]
  ]
  for (const [x, expected, why] of cases) {
    it(`${why}: ${x} → 0x${expected.toString(16)}`, () => {
      assert.strictEqual(float32ToFloat16Bits(x), expected)
    })
  }

  it("NaN becomes the canonical quiet NaN 0x7E00, keeping the sign", () => {
    assert.strictEqual(float32ToFloat16Bits(NaN), 0x7e00)
    assert.strictEqual(float32ToFloat16Bits(fromBits(0xffc00001)), 0xfe00)
  })
})

describe("float16 → float32 (exact)", () => {
  const cases: Array<[number, number]> = [
    [0x3c00, 1],
    [0xc000, -2],
    [0x0001, 2 ** -24],
    [0x03ff, 1023 * 2 ** -24],
    [0x0400, 2 ** -14],
    [0x7bff, 65504],
    [0x3555, 0.333251953125],
    [0x3c01, 1 + 2 ** -10],
    [0x7c00, Infinity],
    [0xfc00, -Infinity]
  ]
  for (const [bits, expected] of cases) {
    it(`0x${bits.toString(16)} → ${expected}`, () => assert.strictEqual(float16BitsToFloat32(bits), expected))
  }
  it("signed zeros and NaN", () => {
    assert.isTrue(Object.is(float16BitsToFloat32(0x8000), -0))
    assert.isTrue(Object.is(float16BitsToFloat32(0x0000), 0))
    assert.isNaN(float16BitsToFloat32(0x7e00))
    assert.isNaN(float16BitsToFloat32(0xfc01))
  })
  it("every finite half value survives float32 → float16 unchanged", () => {
    const changed: Array<number> = []
    let checked = 0
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) continue
      checked++
      if (float32ToFloat16Bits(float16BitsToFloat32(h)) !== h) changed.push(h)
    }
    assert.strictEqual(checked, 0x10000 - 2 * 1023)
    assert.deepStrictEqual(changed, [])
  })
})

describe("float32 → bfloat16 (round to nearest even)", () => {
  const cases: Array<[number, number, string]> = [
    [1, 0x3f80, "one"],
    [-2, 0xc000, "negative power of two"],
    [0, 0x0000, "+0"],
    [-0, 0x8000, "-0"],
    [Infinity, 0x7f80, "+Inf"],
    [-Infinity, 0xff80, "-Inf"],
    // float32 0.1 = 0x3DCCCCCD: low half 0xCCCD > 0x8000 rounds up.
    [0.1, 0x3dcd, "0.1"],
    // 0x3F808000: exactly half an ulp above 1 → even (0x3F80).
    [fromBits(0x3f808000), 0x3f80, "tie down to even"],
    // 0x3F818000: half an ulp above 0x3F81 → even (0x3F82).
    [fromBits(0x3f818000), 0x3f82, "tie up to even"],
    [fromBits(0x3f808001), 0x3f81, "just above the tie rounds up"],
    // Largest finite bfloat16 0x7F7F = (2 - 2^-7) · 2^127.
    [(2 - 2 ** -7) * 2 ** 127, 0x7f7f, "largest finite"],
    // float32 max 0x7F7FFFFF lies above the midpoint between 0x7F7F and 2^128: overflow.
    [fromBits(0x7f7fffff), 0x7f80, "float32 max overflows to Inf"],
    [-fromBits(0x7f7fffff), 0xff80, "negative overflow to -Inf"],
    // float32 subnormal 0x000116C2: low half 0x16C2 < 0x8000 rounds down to 0x0001.
    [fromBits(0x000116c2), 0x0001, "subnormal"],
    [fromBits(0x00008000), 0x0000, "subnormal tie to even = 0"],
    [fromBits(0x00018000), 0x0002, "subnormal tie to even = 2"]
  ]
  for (const [x, expected, why] of cases) {
    it(`${why}: 0x${bitsOf(x).toString(16)} → 0x${expected.toString(16)}`, () => {
      assert.strictEqual(float32ToBfloat16Bits(x), expected)
    })
  }
  it("NaN becomes PyTorch's 0x7FC0", () => {
    assert.strictEqual(float32ToBfloat16Bits(NaN), 0x7fc0)
    assert.strictEqual(float32ToBfloat16Bits(fromBits(0xff800001)), 0x7fc0)
  })
  it("decoding is the top half of a float32", () => {
    assert.strictEqual(bfloat16BitsToFloat32(0x3f80), 1)
    assert.strictEqual(bfloat16BitsToFloat32(0x3dcd), fromBits(0x3dcd0000))
    assert.strictEqual(bfloat16BitsToFloat32(0x0001), 2 ** -133)
    assert.strictEqual(bfloat16BitsToFloat32(0x7f7f), (2 - 2 ** -7) * 2 ** 127)
    assert.isTrue(Object.is(bfloat16BitsToFloat32(0x8000), -0))
    assert.strictEqual(bfloat16BitsToFloat32(0xff80), -Infinity)
    assert.isNaN(bfloat16BitsToFloat32(0x7fc0))
  })
})

describe("tensor encoding", () => {
  it("F32 is bit-exact, NaN payloads and -0 included", () => {
    const bits = [0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00001, 0xffbfffff, 0x00000001, 0x3f800000, 0x12345678]
    const data = new Float32Array(new Uint32Array(bits).buffer)
    const bytes = encodeTensor(data, "F32")
    // Little-endian on disk.
    assert.deepStrictEqual([...bytes.slice(4 * 8, 4 * 9)], [0x78, 0x56, 0x34, 0x12])
    const back = decodeTensor(bytes.slice(), "F32")
    assert.deepStrictEqual([...new Uint32Array(back.buffer)], bits)
  })
  it("F16 and BF16 arrays match the scalar conversions, little-endian", () => {
    const data = new Float32Array([1, -2, 0.1, 65520, 2 ** -25, NaN])
    const f16 = encodeTensor(data, "F16")
    assert.deepStrictEqual([...f16.slice(0, 4)], [0x00, 0x3c, 0x00, 0xc0])
    assert.deepStrictEqual([...new Uint16Array(f16.buffer)], [0x3c00, 0xc000, 0x2e66, 0x7c00, 0x0000, 0x7e00])
    const bf16 = encodeTensor(data, "BF16")
    assert.deepStrictEqual([...new Uint16Array(bf16.buffer)], [0x3f80, 0xc000, 0x3dcd, 0x4780, 0x3300, 0x7fc0])
    assert.deepStrictEqual([...decodeTensor(f16, "F16")].slice(0, 5), [1, -2, float16BitsToFloat32(0x2e66), Infinity, 0])
    assert.deepStrictEqual([...decodeTensor(bf16, "BF16")].slice(0, 5), [1, -2, fromBits(0x3dcd0000), 65536, 2 ** -25])
  })
  it("decodes from an odd byte offset", () => {
    const buffer = new Uint8Array(5)
    buffer.set([0x00, 0x3c, 0x00, 0xc0], 1)
    assert.deepStrictEqual([...decodeTensor(buffer.subarray(1), "F16")], [1, -2])
  })
})
