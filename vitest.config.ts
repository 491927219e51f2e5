import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // tfjs kernels are CPU-bound and single-threaded; two forks use both cores.
    pool: "forks",
    maxWorkers: 2,
    // The load test collects garbage before it compares heap sizes.
    execArgv: ["--expose-gc"],
    testTimeout: 60_000,
    hookTimeout: 60_000
  }
})
