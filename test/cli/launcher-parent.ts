/**
 * The launcher's parent side for Launcher.test.ts: bin/relaunch.js starting the CLI under this
 * same Node, exactly as bin/simmer.js does under the bundled one when started by an old Node.
 */
import { join } from "node:path"
import { relaunch } from "../../bin/relaunch.js"

relaunch(process.execPath, join(import.meta.dirname, "../../src/cli/main.ts"), process.argv.slice(2))
