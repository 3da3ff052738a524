/**
 * Echoing untrusted text (label values, URIs, option values) into log and error messages: always one line,
 * always short. Control characters and line separators are escaped, long values truncated.
 */

// eslint-disable-next-line no-control-regex -- escaping control characters is the point
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

function escape(text: string): string {
  return text.replace(UNPRINTABLE, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  let cut = text.slice(0, max);
  // Do not leave half a surrogate pair behind.
  if (/[\ud800-\udbff]$/.test(cut)) cut = cut.slice(0, -1);
  return `${cut}…(${text.length} chars)`;
}

/** `value` in double quotes, escaped and cut to about `max` characters: safe to embed in a one-line message. */
export function quote(value: string, max = 80): string {
  return `"${escape(truncate(value, max)).replace(/"/g, '\\"')}"`;
}

/** A whole message made safe for one log or stderr line: control characters escaped, at most `max` chars. */
export function oneLine(text: string, max = 400): string {
  return escape(truncate(text, max));
}
