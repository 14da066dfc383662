/**
 * The metrics endpoint (`--metrics_port`): `/metrics` in the Prometheus/OpenMetrics text format,
 * and `/healthz`, 200 while the program consumes and commits, 503 while writing is stopped by a
 * transient error (a full disk) or no consumer is in the group.
 *
 * @module
 */
import type { DownloaderHealth, DownloadStatus } from "../kafka/downloader.ts";
import type { PartitionLag } from "../kafka/drain.ts";

/** Everything the endpoint reports, taken when it is scraped. */
export interface MetricsSnapshot {
  status: DownloadStatus;
  health: DownloaderHealth;
  /** The group's lag by partition at the last look, or `undefined` before the first. */
  lags: PartitionLag[] | undefined;
  /** `Date.now()` of the last error logged, or `null`. */
  lastErrorAt: number | null;
  /** `Date.now()` now. */
  now: number;
}

/** The health verdict: `ok`, or why not. */
export function healthOf(s: MetricsSnapshot): { ok: boolean; text: string } {
  const h = s.health;
  if (h.stalledSince !== null) {
    const seconds = Math.round((s.now - h.stalledSince) / 1000);
    return {
      ok: false,
      text: `stuck for ${seconds} s: writing is stopped and nothing is committed (${h.stalledOn})`,
    };
  }
  if (h.consumersInGroup === 0) {
    return { ok: false, text: `out of the group: none of its ${h.consumers} consumers is in it` };
  }
  return {
    ok: true,
    text: `ok: ${h.consumersInGroup} of ${h.consumers} consumers in the group, ${
      h.lastCommitAt === null
        ? "nothing committed yet"
        : `last commit ${Math.round((s.now - h.lastCommitAt) / 1000)} s ago`
    }`,
  };
}

function line(name: string, help: string, type: "counter" | "gauge", samples: string[]): string {
  return `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${samples.join("\n")}\n`;
}

/** The `/metrics` text (Prometheus exposition format 0.0.4). */
export function renderMetrics(s: MetricsSnapshot): string {
  const st = s.status;
  const h = s.health;
  const parts = [
    line("dfdd_records_read_total", "Chunk records read from the topic.", "counter", [
      `dfdd_records_read_total ${st.messagesRead}`,
    ]),
    line(
      "dfdd_records_processed_total",
      "Chunk records written to their files.",
      "counter",
      [`dfdd_records_processed_total ${st.messagesProcessed}`],
    ),
    line("dfdd_bad_records_total", "Records quarantined as bad.", "counter", [
      `dfdd_bad_records_total ${st.badRecords}`,
    ]),
    line("dfdd_bytes_read_total", "Chunk data bytes read.", "counter", [
      `dfdd_bytes_read_total ${st.bytesRead}`,
    ]),
    line("dfdd_bytes_written_total", "Chunk data bytes written to files.", "counter", [
      `dfdd_bytes_written_total ${st.bytesProcessed}`,
    ]),
    line("dfdd_files_published_total", "Files rebuilt and published.", "counter", [
      `dfdd_files_published_total ${st.filesCompleted}`,
    ]),
    line("dfdd_files_rejected", "Files of this run that could not be rebuilt.", "gauge", [
      `dfdd_files_rejected ${st.rejected.length}`,
    ]),
    line("dfdd_files_in_progress", "Files being rebuilt.", "gauge", [
      `dfdd_files_in_progress ${st.inProgress.length}`,
    ]),
    line(
      "dfdd_files_given_up_total",
      "Files given up (over a bound on what is in progress).",
      "counter",
      [`dfdd_files_given_up_total ${st.givenUp}`],
    ),
    line("dfdd_quarantine_bytes", "Bytes kept in the quarantine folder.", "gauge", [
      `dfdd_quarantine_bytes ${h.quarantineBytes}`,
    ]),
    line("dfdd_consumers_in_group", "Consumers of this process in the group.", "gauge", [
      `dfdd_consumers_in_group ${h.consumersInGroup}`,
    ]),
    line(
      "dfdd_topic_split",
      "1 while another process of the group holds partitions of a topic keyed per chunk (files cannot complete), else 0.",
      "gauge",
      [`dfdd_topic_split ${st.splitWarning === null ? 0 : 1}`],
    ),
    line(
      "dfdd_writes_stalled",
      "1 while writing is stopped by a transient error (a full disk), else 0.",
      "gauge",
      [`dfdd_writes_stalled ${h.stalledSince === null ? 0 : 1}`],
    ),
    line(
      "dfdd_last_commit_age_seconds",
      "Seconds since this process last committed offsets (NaN before its first commit).",
      "gauge",
      [
        `dfdd_last_commit_age_seconds ${
          h.lastCommitAt === null ? "NaN" : ((s.now - h.lastCommitAt) / 1000).toFixed(3)
        }`,
      ],
    ),
    line(
      "dfdd_last_error_timestamp_seconds",
      "Unix time of the last error logged (0 when none).",
      "gauge",
      [`dfdd_last_error_timestamp_seconds ${((s.lastErrorAt ?? 0) / 1000).toFixed(3)}`],
    ),
  ];
  if (s.lags !== undefined) {
    parts.push(
      line(
        "dfdd_consumer_lag",
        "Records of the partition not yet committed by the consumer group.",
        "gauge",
        s.lags.map((l) => `dfdd_consumer_lag{partition="${l.partition}"} ${l.lag}`),
      ),
    );
  }
  return parts.join("");
}

/** Options of {@linkcode serveMetrics}. */
export interface ServeMetricsOptions {
  hostname: string;
  /** 0 picks a free port. */
  port: number;
  snapshot: () => MetricsSnapshot;
}

/** Serves `/metrics` and `/healthz`; returns the address it listens on and how to stop it. */
export function serveMetrics(
  o: ServeMetricsOptions,
): { url: string; shutdown: () => Promise<void> } {
  const server = Deno.serve(
    { hostname: o.hostname, port: o.port, onListen: () => {} },
    (request) => {
      const path = new URL(request.url).pathname;
      if (path === "/metrics") {
        return new Response(renderMetrics(o.snapshot()), {
          headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
        });
      }
      if (path === "/healthz") {
        const health = healthOf(o.snapshot());
        return new Response(health.text + "\n", {
          status: health.ok ? 200 : 503,
          headers: { "content-type": "text/plain; charset=utf-8" },
        });
      }
      return new Response("Not found: try /metrics or /healthz\n", { status: 404 });
    },
  );
  const addr = server.addr;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  return { url: `http://${host}:${addr.port}`, shutdown: () => server.shutdown() };
}
