// Building the page. Data only ever becomes text nodes and attribute values (never HTML), so a
// file named `<img src=x onerror=alert(1)>` shows as those characters and runs nothing.

/**
 * An element: `h("a", {href: "/x", class: "c"}, "text", child)`. Attributes go through
 * setAttribute, event handlers through `on: {click: fn}`; children are nodes or strings.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "on") {
      for (const [event, handler] of Object.entries(value))
        element.addEventListener(event, handler);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else if (value !== false && value !== null && value !== undefined) {
      if (name.toLowerCase().startsWith("on")) throw new Error(`no inline handlers: ${name}`);
      element.setAttribute(name, String(value));
    }
  }
  element.append(
    ...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false),
  );
  return element;
}

/** Replaces what `parent` holds with `children`. */
export function fill(parent, ...children) {
  parent.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined));
}

let unique = 0;
/** An id no other element of the page has, for <label for> and aria-describedby. */
export function newId(prefix) {
  unique += 1;
  return `${prefix}-${unique}`;
}

/** A proto3 JSON timestamp as a Date: Date.parse takes at most milliseconds everywhere. */
export function parseTime(text) {
  return new Date(text.replace(/(\.\d{3})\d*/, "$1"));
}

const UNITS = [
  ["year", 365 * 86400],
  ["month", 30 * 86400],
  ["week", 7 * 86400],
  ["day", 86400],
  ["hour", 3600],
  ["minute", 60],
  ["second", 1],
];

/** "in 6 days", "3 minutes ago": the largest unit that fits, as Intl words it. */
export function relative(date, now = Date.now()) {
  const seconds = (date.getTime() - now) / 1000;
  const words = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size || unit === "second") {
      return words.format(Math.round(seconds / size), unit);
    }
  }
  return "";
}

const LOCAL = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/** A <time> with the local date and time, then the relative time: "Dec 9, 2026, 5:00 PM (in
 * 6 days)". Empty for a missing timestamp. */
export function when(text) {
  if (!text) return h("span", {}, "never");
  const date = parseTime(text);
  return h(
    "time",
    { datetime: date.toISOString(), title: text },
    `${LOCAL.format(date)} (${relative(date)})`,
  );
}

/** A byte count as people read it: "512 bytes", "1.5 KiB". */
export function size(bytes) {
  let value = Number(bytes || 0);
  if (value < 1024) return `${value} ${value === 1 ? "byte" : "bytes"}`;
  for (const unit of ["KiB", "MiB", "GiB", "TiB"]) {
    value /= 1024;
    if (value < 1024 || unit === "TiB") {
      return `${value.toLocaleString(undefined, { maximumFractionDigits: 1 })} ${unit}`;
    }
  }
  return "";
}
