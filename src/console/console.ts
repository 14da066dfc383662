/**
 * The interactive console: one command per line on standard input (`c`/`check`, `q`/`quit`,
 * case-insensitive), and the text of the `check` report and of the shutdown summary.
 *
 * @module
 */
import { type DownloadStatus, RECENT_FILES } from "../kafka/downloader.ts";
import { formatTime } from "./logger.ts";

/** A console command. */
export type Command = "check" | "quit";

/** Maps one input line to a command, or `undefined` for anything else. */
export function parseCommand(line: string): Command | undefined {
  const word = line.trim().toLowerCase();
  if (word === "c" || word === "check") return "check";
  if (word === "q" || word === "quit") return "quit";
  return undefined;
}

/**
 * Reads lines from `input` and calls `onCommand` for each command. Returns at end of input
 * (which is not a quit: a service has no console).
 */
export async function readCommands(
  input: ReadableStream<Uint8Array>,
  onCommand: (command: Command) => void,
): Promise<void> {
  let buffer = "";
  const decoder = new TextDecoder();
  for await (const bytes of input) {
    buffer += decoder.decode(bytes, { stream: true });
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const command = parseCommand(buffer.slice(0, newline));
      buffer = buffer.slice(newline + 1);
      if (command) onCommand(command);
    }
  }
  const command = parseCommand(buffer);
  if (command) onCommand(command);
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** The `check` report. */
export function checkReport(status: DownloadStatus): string {
  const lines = [
    `${status.messagesRead} messages read, ${status.messagesProcessed} messages processed, ${status.filesCompleted} files completely reconstructed so far` +
    (status.badRecords > 0
      ? ` (${plural(status.badRecords, "bad record")} skipped and quarantined)`
      : "") +
    (status.givenUp > 0
      ? `; ${plural(status.givenUp, "file")} given up (see the log and the quarantine)`
      : ""),
  ];
  if (status.splitWarning !== null) lines.push(`WARNING: ${status.splitWarning}`);
  if (status.inProgress.length > 0 || status.recent.length > 0) {
    lines.push(
      `Files recognized so far (up to ${RECENT_FILES} most recent completed files shown):`,
    );
    for (const f of status.inProgress) {
      const share = f.total > 0 ? Math.floor((100 * f.chunks) / f.total) : 0;
      lines.push(`\t${f.path} (in progress: ${f.chunks}/${f.total} chunks, ${share}%)`);
    }
    for (const path of status.recent) lines.push(`\t${path} (completed)`);
  }
  return lines.join("\n");
}

/** Local time as `YYYY-MM-DD HH:MM:SS.ffffff`, as the reference's summary shows it. */
function longTime(d: Date): string {
  return `${formatTime(d)}.${String(d.getMilliseconds() * 1000).padStart(6, "0")}`;
}

/** The summary logged at shutdown. */
export function shutdownSummary(status: DownloadStatus, start: Date, stop: Date): string {
  const k = status.filesCompleted;
  const middle = status.recent.length > 0
    ? `, ${status.messagesProcessed} messages were successfully processed, and ${k} file${
      k === 1 ? " was" : "s were"
    } successfully reconstructed`
    : ` and ${status.messagesProcessed} messages were successfully processed`;
  return `${status.messagesRead} total messages were consumed${middle} from ${longTime(start)} to ${
    longTime(stop)
  }` +
    `\nMost recent completed files (up to ${RECENT_FILES}):\n\t${status.recent.join("\n\t")}`;
}
