import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { readSafetensors, readSafetensorsHeader, type TensorSource, writeSafetensors } from "../../src/io/Safetensors.ts"
import { f32Bytes, rawSafetensors, readBytes, tempDir, writeBytes } from "./_support.ts"

const source = (name: string, dtype: "F32" | "F16" | "BF16", shape: Array<number>, values: ArrayLike<number>): TensorSource =>
  ({ name, dtype, shape, data: Effect.succeed(Float32Array.from(values)) })

describe("writer", () => {
  // Byte vectors from the safetensors library's own Rust tests (test_serialization,
  // test_empty, test_serialization_forced_alignement): the exact output of `serialize`.
  it.effect("matches the Python/Rust library byte for byte", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const path = join(dir, "a.safetensors")
      yield* writeSafetensors(path, [source("attn.0", "F32", [1, 2, 3], [0, 1, 2, 3, 4, 5])], { metadata: null })
      const expected = [
        64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100,
        116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34,
        58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115,
        101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63,
        0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64
      ]
      assert.deepStrictEqual([...(yield* readBytes(path))], expected)

      yield* writeSafetensors(path, [source("attn0", "F32", [1, 1, 2, 3], [0, 1, 2, 3, 4, 5])], { metadata: null })
      const aligned = [
        72, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 48, 34, 58, 123, 34, 100, 116,
        121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58,
        91, 49, 44, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102,
        115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 32, 32, 32, 32, 32,
        32, 32, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0,
        160, 64
      ]
      assert.deepStrictEqual([...(yield* readBytes(path))], aligned)

      yield* writeSafetensors(path, [], { metadata: null })
      assert.deepStrictEqual([...(yield* readBytes(path))], [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32])

      yield* writeSafetensors(path, [], { metadata: { framework: "pt" } })
      assert.deepStrictEqual([...(yield* readBytes(path))], [
        40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95,
        95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112,
        116, 34, 125, 125, 32, 32, 32, 32, 32
      ])
    }))

  it.effect("orders entries by dtype alignment (F32, BF16, F16) then name, with transformers' metadata", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir, "b.safetensors")
      yield* writeSafetensors(path, [
        source("b", "F16", [1], [1]),
        source("a", "F16", [1], [1]),
        source("z", "BF16", [2], [1, 2]),
        source("y", "F32", [1], [1]),
        source("B", "F32", [1], [1])
      ])
      const bytes = yield* readBytes(path)
      const n = Number(bytes.readBigUInt64LE(0))
      assert.strictEqual(n % 8, 0)
      const header = bytes.subarray(8, 8 + n).toString("utf8")
      assert.strictEqual(
        header.trimEnd(),
        `{"__metadata__":{"format":"pt"},` +
          `"B":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},` +
          `"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},` +
          `"z":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},` +
          `"a":{"dtype":"F16","shape":[1],"data_offsets":[12,14]},` +
          `"b":{"dtype":"F16","shape":[1],"data_offsets":[14,16]}}`
      )
      assert.strictEqual(bytes.length, 8 + n + 16)
    }))

  it.effect("F32 round trip is bit-exact (NaN payloads, -0, Inf, subnormals)", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir, "c.safetensors")
      const bits = new Uint32Array([0x7fc00123, 0x80000000, 0x7f800000, 0xff800000, 0x00000001, 0x3eaaaaab, 0xc2f6e979, 0x00800000])
      const values = new Float32Array(bits.buffer)
      yield* writeSafetensors(path, [{ name: "w", dtype: "F32", shape: [2, 4], data: Effect.succeed(values) }])
      const read = yield* readSafetensors(path)
      const w = read.get("w")!
      assert.deepStrictEqual(w.shape, [2, 4])
      assert.strictEqual(w.dtype, "F32")
      assert.deepStrictEqual([...new Uint32Array(w.data.buffer)], [...bits])
    }))
})

describe("reader", () => {
  const header = (entries: Record<string, unknown>) => ({ __metadata__: { format: "pt" }, ...entries })

  const attempt = (bytes: Uint8Array) =>
    Effect.gen(function*() {
      const path = join(yield* tempDir, "model.safetensors")
      yield* writeBytes(path, bytes)
      const error = yield* Effect.flip(readSafetensors(path))
      // Every message names the file it is about.
      assert.include(error.message, path)
      return error
    })

  it.effect("reads tensors by offset whatever the header order, ignoring __metadata__", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir, "d.safetensors")
      const data = new Uint8Array([...f32Bytes([5, 6]), 0x00, 0x3c, 0x00, 0xc0, 0x80, 0x3f])
      yield* writeBytes(path, rawSafetensors(header({
        c: { dtype: "BF16", shape: [1], data_offsets: [12, 14] },
        a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
        b: { dtype: "F16", shape: [2, 1], data_offsets: [8, 12] }
      }), data))
      const read = yield* readSafetensors(path)
      assert.deepStrictEqual([...read.keys()], ["a", "b", "c"])
      assert.deepStrictEqual([...read.get("a")!.data], [5, 6])
      assert.deepStrictEqual([...read.get("b")!.data], [1, -2])
      assert.deepStrictEqual(read.get("b")!.shape, [2, 1])
      assert.deepStrictEqual([...read.get("c")!.data], [1])
      const h = yield* readSafetensorsHeader(path)
      assert.deepStrictEqual(h.metadata, { format: "pt" })
    }))

  it.effect("a file shorter than the length prefix is corrupt", () =>
    Effect.gen(function*() {
      const error = yield* attempt(new Uint8Array([1, 2, 3]))
      assert.strictEqual(error._tag, "CorruptCheckpoint")
      assert.include(error.message, "shorter than the 8-byte header length")
    }))

  it.effect("a header length larger than the file is corrupt", () =>
    Effect.gen(function*() {
      const error = yield* attempt(rawSafetensors(header({}), new Uint8Array(0), 1000n))
      assert.strictEqual(error._tag, "CorruptCheckpoint")
      assert.include(error.message, "header length is 1000 bytes")
      const huge = yield* attempt(rawSafetensors(header({}), new Uint8Array(0), 2n ** 63n))
      assert.strictEqual(huge._tag, "CorruptCheckpoint")
    }))

  it.effect("a header that is not JSON, not an object or not UTF-8 is corrupt", () =>
    Effect.gen(function*() {
      assert.include((yield* attempt(rawSafetensors("{\"a\": [1,", new Uint8Array(0)))).message, "not valid JSON")
      assert.include((yield* attempt(rawSafetensors("[1, 2, 3]", new Uint8Array(0)))).message, "does not start with '{'")
      const badUtf8 = rawSafetensors("{\"a\":1} ", new Uint8Array(0))
      badUtf8[10] = 0xff
      assert.include((yield* attempt(badUtf8)).message, "not valid UTF-8")
    }))

  it.effect("malformed entries are listed with their paths", () =>
    Effect.gen(function*() {
      const error = yield* attempt(rawSafetensors(header({
        a: { dtype: "F32", shape: [-1], data_offsets: [0, 4] },
        b: { dtype: "F32", shape: [1], data_offsets: [0] },
        c: { shape: [1], data_offsets: [0, 4] }
      }), f32Bytes([1])))
      assert.strictEqual(error._tag, "CorruptCheckpoint")
      assert.include(error.message, `tensor "a": shape[0]`)
      assert.include(error.message, `tensor "b": data_offsets`)
      assert.include(error.message, `tensor "c": dtype: Missing key`)
    }))

  it.effect("__metadata__ must map strings to strings", () =>
    Effect.gen(function*() {
      const error = yield* attempt(rawSafetensors({ __metadata__: { format: 1 } }, new Uint8Array(0)))
      assert.strictEqual(error._tag, "CorruptCheckpoint")
      assert.include(error.message, "__metadata__")
    }))

  it.effect("an I64 tensor is an unsupported dtype naming the tensor", () =>
    Effect.gen(function*() {
      const error = yield* attempt(rawSafetensors(header({
        "model.ids": { dtype: "I64", shape: [1], data_offsets: [0, 8] }
      }), new Uint8Array(8)))
      assert.strictEqual(error._tag, "UnsupportedDtype")
      if (error._tag === "UnsupportedDtype") assert.strictEqual(error.dtype, "I64")
      assert.include(error.message, `"model.ids" is I64`)
    }))

  it.effect("offsets beyond the data section (a truncated file) are corrupt", () =>
    Effect.gen(function*() {
      const full = rawSafetensors(header({ a: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }), f32Bytes([1, 2, 3, 4]))
      const error = yield* attempt(full.subarray(0, full.length - 3))
      assert.strictEqual(error._tag, "CorruptCheckpoint")
      assert.include(error.message, `"a" has data_offsets [0, 16] but the data section is only 13 bytes`)
    }))

  it.effect("offsets that disagree with shape × dtype size, or run backwards, are corrupt", () =>
    Effect.gen(function*() {
      const size = yield* attempt(rawSafetensors(header({ a: { dtype: "F16", shape: [3], data_offsets: [0, 8] } }), new Uint8Array(8)))
      assert.strictEqual(size._tag, "CorruptCheckpoint")
      assert.include(size.message, "needs 6 bytes but its data_offsets [0, 8] span 8")
      const backwards = yield* attempt(rawSafetensors(header({ a: { dtype: "F32", shape: [0], data_offsets: [8, 4] } }), new Uint8Array(8)))
      assert.include(backwards.message, "begin after end")
    }))

  it.effect("overlapping tensors are corrupt", () =>
    Effect.gen(function*() {
      const error = yield* attempt(rawSafetensors(header({
        a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
        b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
        empty: { dtype: "F32", shape: [0], data_offsets: [4, 4] }
      }), f32Bytes([1, 2, 3])))
      assert.strictEqual(error._tag, "CorruptCheckpoint")
      assert.include(error.message, `"a" [0, 8] and "b" [4, 12] overlap`)
      assert.notInclude(error.message, "empty")
    }))

  it.effect("a missing file is CheckpointNotFound", () =>
    Effect.gen(function*() {
      const path = join(yield* tempDir, "nope.safetensors")
      const error = yield* Effect.flip(readSafetensors(path))
      assert.strictEqual(error._tag, "CheckpointNotFound")
      assert.include(error.message, path)
    }))
})
