/** Takes the lock of the run directory given, says so on stdout, and holds it until killed. */
import { RunLock } from "../../src/train/run_lock.ts";

const lock = await RunLock.acquire(Deno.args[0]!);
await Deno.stdout.write(new TextEncoder().encode(`locked ${Deno.pid}\n`));
await new Promise((resolve) => setTimeout(resolve, 600_000));
lock.release();
