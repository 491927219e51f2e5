/**
 * Model code is pure tensor work: it knows no services and no backend selection. What it needs
 * from them (the memory budget) is handed in as a value defined in src/model (DeviceRoom).
 */
import { readdir, readFile } from "node:fs/promises"
import { dirname, join, relative, resolve } from "node:path"
import { describe, expect, it } from "vitest"

const root = resolve(import.meta.dirname, "../..")
const modelDir = join(root, "src/model")
const forbidden = ["src/compute", "src/services"].map((dir) => join(root, dir))

/** Every module specifier a file names: static and type imports, re-exports and dynamic imports. */
const specifiers = (source: string): Array<string> =>
  [...source.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)["']([^"']+)["']/g)].map((m) => m[1])

const modelFiles = async (dir: string): Promise<Array<string>> =>
  (await Promise.all((await readdir(dir, { withFileTypes: true })).map((entry) =>
    entry.isDirectory() ? modelFiles(join(dir, entry.name)) : entry.name.endsWith(".ts") ? [join(dir, entry.name)] : []
  ))).flat()

describe("layering", () => {
  it("finds the imports it checks", () => {
    expect(specifiers(`import { a } from "../compute/X.ts"\nimport type { B } from './Y.ts'\nconst c = await import("../services/Z.ts")`))
      .toEqual(["../compute/X.ts", "./Y.ts", "../services/Z.ts"])
  })

  it("nothing in src/model imports src/compute or src/services", async () => {
    const files = await modelFiles(modelDir)
    expect(files.length).toBeGreaterThan(10)
    const offending: Array<string> = []
    for (const file of files) {
      for (const specifier of specifiers(await readFile(file, "utf8"))) {
        if (!specifier.startsWith(".")) continue
        const target = resolve(dirname(file), specifier)
        if (forbidden.some((dir) => target === dir || target.startsWith(dir + "/"))) {
          offending.push(`${relative(root, file)} imports ${specifier}`)
        }
      }
    }
    expect(offending).toEqual([])
  })
})
