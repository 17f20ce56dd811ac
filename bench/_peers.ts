/**
 * Runs the PyTorch peers (bench/seed_torch.py: eager fp32 and TF32; bench/strong_torch.py: bf16 autocast
 * training and CUDA-graph sampling) in the same call as our benchmark, and prints our figures beside
 * theirs with the ratio ours / theirs. Used by bench/gpu_train_step.ts `--peers` on the device machine.
 */
// deno-lint-ignore-file no-console

/** One JSON line a peer script printed. */
export type PeerRecord = Record<string, unknown>;

/**
 * Runs `python3 bench/<script> <args>` and returns its JSON lines (errors become one record).
 *
 * @param script The peer script beside this file.
 * @param args Its arguments (the model peers take the device, `cuda`).
 * @returns The records it printed.
 */
export async function runPeer(script: string, args: string[] = ["cuda"]): Promise<PeerRecord[]> {
  const path = new URL(`./${script}`, import.meta.url).pathname;
  try {
    const out = await new Deno.Command("python3", {
      args: [path, ...args],
      stdout: "piped",
      stderr: "piped",
      env: { PYTHONUNBUFFERED: "1" },
    }).output();
    const lines = new TextDecoder().decode(out.stdout).split("\n").filter((l) => l.startsWith("{"));
    const records: PeerRecord[] = lines.map((l) => ({ ...JSON.parse(l) as PeerRecord, script }));
    if (!out.success) {
      const tail = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" | ");
      records.push({ script, error: `exit ${out.code}: ${tail}` });
    }
    return records;
  } catch (error) {
    return [{ script, error: (error as Error).message }];
  }
}

/** A row of the comparison: our figure and the peers' for the same work. */
export interface Comparison {
  /** What was measured, e.g. "train step, batch 256×64". */
  work: string;
  /** Our time in ms. */
  ours: number;
  /** Peer label → their time in ms (missing when the peer did not run it). */
  peers: Record<string, number | undefined>;
}

/** Prints a markdown table: work, ours, each peer with the ratio ours / theirs. */
export function printComparison(title: string, rows: Comparison[]): void {
  const labels = [...new Set(rows.flatMap((r) => Object.keys(r.peers)))];
  console.log(`\n${title}`);
  console.log(`| work | ours ms | ${labels.map((l) => `${l} ms (ratio)`).join(" | ")} |`);
  console.log(`|---|---:|${labels.map(() => "---:").join("|")}|`);
  for (const r of rows) {
    const cells = labels.map((l) => {
      const theirs = r.peers[l];
      return theirs === undefined ? "—" : `${theirs.toFixed(1)} (${(r.ours / theirs).toFixed(3)}×)`;
    });
    console.log(`| ${r.work} | ${r.ours.toFixed(1)} | ${cells.join(" | ")} |`);
  }
}

/** The `ms` of the first record matching every given field, if any. */
export function peerMs(records: PeerRecord[], match: PeerRecord): number | undefined {
  const found = records.find((r) =>
    Object.entries(match).every(([k, v]) => r[k] === v) && typeof r.ms === "number"
  );
  return found?.ms as number | undefined;
}
