/**
 * When bin/relaunch.js started this process under the bundled Node, it holds an IPC channel to
 * us. The channel closes when the launcher dies, also by `kill -9`, which it cannot forward:
 * then stop the way SIGTERM stops us (a run saves its state and exits 75), instead of computing
 * on and writing into a run folder nobody watches while a `simmer resume` may start next to it.
 */

/** Follows the launcher that started this process, if one did; the channel does not keep the process alive. */
export const exitWithLauncher = (): void => {
  const channel = process.channel
  if (channel === undefined) return
  channel.unref()
  process.once("disconnect", () => process.kill(process.pid, "SIGTERM"))
}
