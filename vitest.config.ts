import { BaseSequencer, type TestSpecification } from "vitest/node"
import { defineConfig } from "vitest/config"

/**
 * The files that take minutes (daemons, child processes, Postgres) start first. Without
 * durations from an earlier run, as in a fresh clone or CI, vitest orders files by size, and the
 * four-minute load test started near the end: it then ran alone on one worker while the other
 * had nothing left.
 */
const slowest = ["server/Load", "cli/ClientCommands", "cluster/Cluster", "server/RunIsolation", "server/Daemon", "server/Page", "compute/WebGpuRun", "cli/RunCommands"]

class SlowestFirst extends BaseSequencer {
  override async sort(files: Array<TestSpecification>): Promise<Array<TestSpecification>> {
    const rank = (spec: TestSpecification) => {
      const at = slowest.findIndex((name) => spec.moduleId.endsWith(`test/${name}.test.ts`))
      return at === -1 ? slowest.length : at
    }
    // Array.prototype.sort is stable: the rest keep vitest's own order.
    return (await super.sort(files)).sort((a, b) => rank(a) - rank(b))
  }
}

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // tfjs kernels are CPU-bound and single-threaded; two forks use both cores.
    pool: "forks",
    maxWorkers: 2,
    sequence: { sequencer: SlowestFirst },
    // The load test collects garbage before it compares heap sizes.
    execArgv: ["--expose-gc"],
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
