import { readFileSync } from "node:fs"
import { join } from "node:path"
import { assert, describe, it } from "@effect/vitest"
import { configFloatKeys, pythonFloat, pythonString, toPythonJson } from "../../src/io/PythonJson.ts"
import { fixtureDir } from "./_support.ts"

describe("Python json.dumps(indent=2, sort_keys=True)", () => {
  it("floats print as Python's repr", () => {
    // Values and their repr() in CPython.
    const cases: Array<[number, string]> = [
      [1e-5, "1e-05"],
      [1e-6, "1e-06"],
      [1.5e-7, "1.5e-07"],
      [0.0001, "0.0001"],
      [0.02, "0.02"],
      [10000, "10000.0"],
      [1000000, "1000000.0"],
      [1e15, "1000000000000000.0"],
      [1e16, "1e+16"],
      [123456789012345680, "1.2345678901234568e+17"],
      [0.1 + 0.2, "0.30000000000000004"],
      [-2.5, "-2.5"],
      [0, "0.0"],
      [-0, "-0.0"],
      [Infinity, "Infinity"],
      [NaN, "NaN"]
    ]
    for (const [x, repr] of cases) assert.strictEqual(pythonFloat(x), repr, String(x))
  })

  it("strings escape like ensure_ascii", () => {
    assert.strictEqual(pythonString("a\"b\\c\n\t\u0001"), "\"a\\\"b\\\\c\\n\\t\\u0001\"")
    assert.strictEqual(pythonString("é\u007f😀"), "\"\\u00e9\\u007f\\ud83d\\ude00\"")
  })

  it("layout: sorted keys, two-space indent, one element per line, empty containers inline", () => {
    const text = toPythonJson({ b: [1, "x"], a: { d: [], c: {} }, e: null, f: true, g: 1.5, h: 3 }, { floatKeys: new Set(["h"]) })
    assert.strictEqual(
      text,
      "{\n  \"a\": {\n    \"c\": {},\n    \"d\": []\n  },\n  \"b\": [\n    1,\n    \"x\"\n  ],\n" +
        "  \"e\": null,\n  \"f\": true,\n  \"g\": 1.5,\n  \"h\": 3.0\n}"
    )
  })

  it("reproduces the config.json and generation_config.json transformers wrote", () => {
    for (const name of ["config.json", "generation_config.json"]) {
      const original = readFileSync(join(fixtureDir, name), "utf8")
      assert.strictEqual(toPythonJson(JSON.parse(original), { floatKeys: configFloatKeys }) + "\n", original, name)
    }
  })
})
