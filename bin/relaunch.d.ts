import type { ChildProcess } from "node:child_process"

/** Starts `script` with `args` under `node` and mirrors the child (see relaunch.js); returns the child process. */
export declare const relaunch: (node: string, script: string, args: ReadonlyArray<string>) => ChildProcess
