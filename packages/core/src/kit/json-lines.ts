/** Why a line of a JSON-lines stream was skipped. */
export type BadLine = 'unparseable' | 'too long';

/** Longest event line accepted by default: Docker's lines carry a container's labels, rarely above a few KiB. */
export const MAX_LINE_BYTES = 1 << 20;

/**
 * A splitter for a byte stream of newline-delimited JSON (Docker's `/events`): each complete line is parsed
 * and handed to `onValue`. A line that does not parse, or that grows past `maxLineBytes` before its newline,
 * goes to `onBad` with a short sample and is skipped; an over-long line is dropped as it arrives, so it costs
 * no more memory than the limit. Each byte is scanned once: work is linear in what the engine sends.
 */
export function jsonLines(
  onValue: (value: unknown) => void,
  onBad: (why: BadLine, sample: string) => void,
  maxLineBytes = MAX_LINE_BYTES,
): (chunk: Buffer | string) => void {
  let parts: Buffer[] = [];
  let pending = 0;
  /** Inside a line already reported as too long: drop bytes until its newline. */
  let skipping = false;
  const sample = (bytes: Buffer) => bytes.subarray(0, 200).toString('utf8');

  const finish = (line: Buffer) => {
    const text = line.toString('utf8').trim();
    if (text === '') return;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      onBad('unparseable', text.slice(0, 200));
      return;
    }
    onValue(value);
  };

  return (input) => {
    const chunk = typeof input === 'string' ? Buffer.from(input) : input;
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(10, start);
      const end = newline < 0 ? chunk.length : newline;
      if (skipping) {
        if (newline >= 0) skipping = false;
      } else if (pending + (end - start) > maxLineBytes) {
        onBad('too long', sample(parts.length > 0 ? parts[0] : chunk.subarray(start, end)));
        parts = [];
        pending = 0;
        skipping = newline < 0;
      } else if (newline < 0) {
        parts.push(chunk.subarray(start));
        pending += chunk.length - start;
      } else {
        const piece = chunk.subarray(start, newline);
        finish(parts.length === 0 ? piece : Buffer.concat([...parts, piece]));
        parts = [];
        pending = 0;
      }
      if (newline < 0) break;
      start = newline + 1;
    }
  };
}
