#!/usr/bin/env node
// Launcher for `npx simmer` / the package `bin`. simmer runs on effect 4, whose platform needs
// Node >= 22.19 with TypeScript type stripping. When the Node that started us is older (these
// machines ship Node 20), re-run the CLI under the Node binary that the `node` dependency
// installed into node_modules, forwarding arguments, stdio, signals and the exit code, and
// taking the child down with us if we die (bin/relaunch.js).
import { existsSync } from "node:fs"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { relaunch } from "./relaunch.js"

const root = join(dirname(fileURLToPath(import.meta.url)), "..")
const main = join(root, "src", "cli", "main.ts")
const [major, minor] = process.versions.node.split(".").map(Number)
const supported = major > 22 || (major === 22 && minor >= 19)

if (supported) {
  await import(main)
} else {
  const bundled = join(root, "node_modules", "node", "bin", "node")
  if (!existsSync(bundled)) {
    console.error(
      `simmer needs Node >= 22.19 (this is ${process.version}) and the bundled Node is missing at ${bundled}.\n` +
        "Run `npm install` in the simmer checkout, or start simmer with a newer Node."
    )
    process.exit(1)
  }
  relaunch(bundled, main, process.argv.slice(2))
}
