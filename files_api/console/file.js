// One file: its facts, a form whose Save sends exactly what changed (with the etag the page
// loaded, so a change made meanwhile is never overwritten), a fresh download link, delete
// behind a dialog, and the file's history from the audit log.

import { auditLog, contentSize, deleteFile, getFile, signedLink, updateFile } from "./api.js";
import { h, fill, newId, size, when } from "./dom.js";
import { planUpdate } from "./mask.js";

const POLICIES = [
  ["SINCE_LAST_ACTIVE", "Since last active"],
  ["STATIC", "Static"],
];
const HISTORY_PAGE = 50;

/** The editable part of a File, as the form shows it and planUpdate compares it. */
function editable(file) {
  const labels = Object.create(null);
  for (const [key, value] of Object.entries(file.labels || {})) labels[key] = value;
  const config = file.expirationConfig || {};
  return {
    name: file.name || "",
    description: file.description || "",
    labels,
    policy: config.expirationPolicy || "SINCE_LAST_ACTIVE",
    ttlDays: Number(config.ttlDays || 0),
  };
}

/** A control with its <label for>, and a place for its error as its accessible description. */
function field(labelText, control) {
  const id = control.id || newId("field");
  control.id = id;
  const error = h("p", { id: newId("error"), class: "field-error", hidden: true });
  return {
    control,
    element: h("div", { class: "field" }, h("label", { for: id }, labelText), control, error),
    fail(message) {
      error.textContent = message;
      error.hidden = false;
      control.setAttribute("aria-invalid", "true");
      control.setAttribute("aria-describedby", error.id);
    },
    clear() {
      error.textContent = "";
      error.hidden = true;
      control.removeAttribute("aria-invalid");
      control.removeAttribute("aria-describedby");
    },
  };
}

export async function filePage(main, fileId, ctx) {
  let file;
  let etag;
  try {
    ({ body: file, etag } = await getFile(fileId));
  } catch (error) {
    if (!ctx.stillHere()) return;
    fill(
      main,
      h("h1", { tabindex: "-1" }, "File not shown"),
      h("p", { role: "alert", class: "alert" }, error.message),
    );
    return;
  }
  if (!ctx.stillHere()) return;

  const title = h("h1", { tabindex: "-1" });
  const status = h("p", { role: "status", class: "status" }, ctx.flash);
  const problem = h("div", { class: "problem" });
  const facts = h("dl", { class: "facts" });
  const crumbs = h("p", { class: "crumbs" });
  const download = h("a", { class: "button" }, "Download");
  let linkExpires = 0;
  const sizeText = h("span", {}, "…");
  const dialogTitle = newId("dialog-title");
  const dialogText = h("p");
  const dialog = h(
    "dialog",
    { "aria-labelledby": dialogTitle },
    h("h2", { id: dialogTitle }, "Delete this file?"),
    dialogText,
    h(
      "div",
      { class: "actions" },
      h("button", { type: "button", class: "danger", on: { click: () => remove() } }, "Delete"),
      h(
        "button",
        { type: "button", autofocus: true, on: { click: () => dialog.close() } },
        "Cancel",
      ),
    ),
  );
  const deleteButton = h(
    "button",
    {
      type: "button",
      class: "danger",
      on: {
        click: () => {
          dialogText.textContent = `“${file.name || file.id}” and its content will be deleted for good.`;
          dialog.showModal();
        },
      },
    },
    "Delete",
  );

  // The form
  const name = field("Name", h("input", { autocomplete: "off", spellcheck: "false" }));
  const description = field("Description", h("textarea", { rows: "3" }));
  const labelRows = h("div", { class: "label-rows" });
  const labelsProblem = h("p", { class: "field-error", hidden: true });
  let rows = [];
  const policy = field(
    "Expiration policy",
    h(
      "select",
      {},
      POLICIES.map(([value, text]) => h("option", { value }, text)),
    ),
  );
  const ttl = field(
    "TTL days",
    h("input", { type: "number", min: "1", max: "3650", step: "1", inputmode: "numeric" }),
  );

  function addRow(key = "", value = "") {
    const keyField = field("Label key", h("input", { autocomplete: "off", spellcheck: "false" }));
    const valueField = field(
      "Label value",
      h("input", { autocomplete: "off", spellcheck: "false" }),
    );
    keyField.control.value = key;
    valueField.control.value = value;
    const row = { key: keyField, value: valueField };
    const removeButton = h(
      "button",
      {
        type: "button",
        class: "secondary",
        on: {
          click: () => {
            rows = rows.filter((r) => r !== row);
            row.element.remove();
          },
        },
      },
      "Remove label",
    );
    row.element = h(
      "div",
      { class: "label-row" },
      keyField.element,
      valueField.element,
      removeButton,
    );
    rows.push(row);
    labelRows.append(row.element);
    return row;
  }

  const form = h(
    "form",
    {
      class: "edit",
      novalidate: true,
      on: {
        submit: (event) => {
          event.preventDefault();
          save();
        },
      },
    },
    h("h2", {}, "Edit"),
    name.element,
    description.element,
    h(
      "fieldset",
      { class: "labels" },
      h("legend", {}, "Labels"),
      labelRows,
      labelsProblem,
      h(
        "button",
        { type: "button", class: "secondary", on: { click: () => addRow().key.control.focus() } },
        "Add label",
      ),
    ),
    h("div", { class: "pair" }, policy.element, ttl.element),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Save")),
  );

  const historyBody = h("tbody");
  const historyNote = h("p", { class: "note" });
  const older = h(
    "button",
    { type: "button", class: "secondary", hidden: true },
    "Show older records",
  );
  const history = h(
    "section",
    { class: "history", "aria-labelledby": "history-title" },
    h("h2", { id: "history-title" }, "History"),
    h(
      "table",
      { class: "records" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Time", "Subject", "Action", "Paths"].map((c) => h("th", { scope: "col" }, c)),
        ),
      ),
      historyBody,
    ),
    historyNote,
    older,
  );

  function render() {
    title.textContent = file.name || file.id;
    document.title = `${file.name || file.id} · Files console`;
    fill(
      crumbs,
      h(
        "a",
        { href: `/console/folders/${encodeURIComponent(file.folderId)}` },
        `Folder ${file.folderId}`,
      ),
    );
    const by = (text, who) => [when(text), who ? ` by ${who}` : ""];
    const items = [
      ["ID", file.id],
      ["Folder", file.folderId],
      ["Type", file.mimeType || ""],
      ["Size", sizeText],
      ["Created", by(file.createdAt, file.createdBy)],
      ["Updated", by(file.updatedAt, file.updatedBy)],
      ["Expires", when(file.expiresAt)],
    ];
    fill(
      facts,
      items.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]),
    );
    const values = editable(file);
    for (const f of [name, description, policy, ttl]) f.clear();
    name.control.value = values.name;
    description.control.value = values.description;
    policy.control.value = values.policy;
    ttl.control.value = String(values.ttlDays);
    rows = [];
    labelRows.replaceChildren();
    for (const [key, value] of Object.entries(values.labels).sort(([a], [b]) => (a < b ? -1 : 1))) {
      addRow(key, value);
    }
  }

  async function freshLink() {
    try {
      const link = await signedLink(file.id);
      download.href = link.path;
      linkExpires = link.expires;
    } catch {
      download.removeAttribute("href");
    }
  }
  download.addEventListener("click", async (event) => {
    // A signed link works until its `expires` second: one about to lapse is made anew.
    if (linkExpires * 1000 - Date.now() > 60_000) return;
    event.preventDefault();
    await freshLink();
    if (download.href) location.assign(download.href);
  });

  /** The form's values, or null after marking what cannot be sent as it is. */
  function read() {
    let ok = true;
    for (const f of [name, description, policy, ttl]) f.clear();
    labelsProblem.hidden = true;
    const labels = Object.create(null);
    for (const row of rows) {
      row.key.clear();
      row.value.clear();
      const key = row.key.control.value;
      const value = row.value.control.value;
      if (!key && !value) continue; // an empty row is no label
      if (!key) {
        row.key.fail("A label needs a key.");
        ok = false;
      } else if (Object.hasOwn(labels, key)) {
        row.key.fail("This key is already used above.");
        ok = false;
      } else {
        labels[key] = value;
      }
    }
    const days = ttl.control.value.trim();
    if (!/^-?\d+$/.test(days)) {
      ttl.fail("Enter a whole number of days.");
      ok = false;
    }
    if (!ok) return null;
    return {
      name: name.control.value,
      description: description.control.value,
      labels,
      policy: policy.control.value,
      ttlDays: Number(days),
    };
  }

  const byPath = new Map([
    ["name", name],
    ["description", description],
    ["expiration_config.expiration_policy", policy],
    ["expiration_config.ttl_days", ttl],
  ]);

  /** A 400's field violations, each beside its field (paths as the domain spells them). */
  function showViolations(error) {
    const unplaced = [];
    for (const { field: path, description: why } of error.violations) {
      const label = /^labels\[(['"])(.*)\1\]$/.exec(path || "");
      const row = label && rows.find((r) => r.key.control.value === label[2]);
      const target = byPath.get(path) || (row && (why.startsWith("a value") ? row.value : row.key));
      if (target) target.fail(why);
      else if (path === "labels") {
        labelsProblem.textContent = why;
        labelsProblem.hidden = false;
      } else unplaced.push(`${path}: ${why}`);
    }
    return unplaced;
  }

  async function save() {
    fill(problem);
    status.textContent = "";
    const edited = read();
    if (edited === null) {
      fill(
        problem,
        h("p", { role: "alert", class: "alert" }, "Not saved: check the fields marked."),
      );
      return;
    }
    const { paths, body } = planUpdate(editable(file), edited);
    if (!paths.length) {
      status.textContent = "Nothing to save: no field was changed.";
      return;
    }
    try {
      ({ body: file, etag } = await updateFile(file.id, body, etag));
    } catch (error) {
      if (!ctx.stillHere()) return;
      if (error.status === 412) {
        fill(
          problem,
          h(
            "div",
            { role: "alert", class: "alert" },
            h(
              "p",
              {},
              "This file was changed since the page loaded, so nothing was saved. Reload to see the file as it is now.",
            ),
            h("button", { type: "button", on: { click: reload } }, "Reload"),
          ),
        );
      } else {
        const unplaced = error.violations.length ? showViolations(error) : [error.message];
        fill(
          problem,
          h(
            "p",
            { role: "alert", class: "alert" },
            unplaced.length
              ? `Not saved: ${unplaced.join("; ")}`
              : "Not saved: check the fields marked.",
          ),
        );
      }
      return;
    }
    if (!ctx.stillHere()) return;
    render();
    status.textContent = "Saved";
    loadHistory();
  }

  async function reload() {
    try {
      ({ body: file, etag } = await getFile(file.id));
    } catch (error) {
      fill(problem, h("p", { role: "alert", class: "alert" }, error.message));
      return;
    }
    fill(problem);
    render();
    status.textContent = "Reloaded: the form shows the file as it is now.";
    loadHistory();
    freshLink();
  }

  async function remove() {
    try {
      await deleteFile(file.id, etag);
    } catch (error) {
      dialog.close();
      fill(
        problem,
        h(
          "div",
          { role: "alert", class: "alert" },
          h(
            "p",
            {},
            error.status === 412
              ? "This file was changed since the page loaded, so it was not deleted."
              : error.message,
          ),
          error.status === 412
            ? h("button", { type: "button", on: { click: reload } }, "Reload")
            : null,
        ),
      );
      return;
    }
    dialog.close();
    ctx.setFlash(`Deleted ${file.name || file.id}.`);
    ctx.navigate(`/console/folders/${encodeURIComponent(file.folderId)}`);
  }

  let historyToken = "";
  async function loadHistory(more = false) {
    if (!more) historyToken = "";
    let body;
    try {
      ({ body } = await auditLog(file.id, HISTORY_PAGE, historyToken));
    } catch (error) {
      historyNote.textContent = `The history could not be read: ${error.message}`;
      return;
    }
    if (!ctx.stillHere()) return;
    const records = body.records || [];
    const lines = records.map((r) =>
      h(
        "tr",
        {},
        h("td", { "data-label": "Time" }, when(r.time)),
        h("td", { "data-label": "Subject" }, r.subject || ""),
        h("td", { "data-label": "Action" }, r.action || ""),
        h("td", { "data-label": "Paths" }, (r.paths || []).join(", ") || "—"),
      ),
    );
    if (more) historyBody.append(...lines);
    else fill(historyBody, lines);
    historyNote.textContent = historyBody.children.length ? "" : "No records.";
    historyToken = body.nextPageToken || "";
    older.hidden = !(historyToken && records.length);
  }
  older.addEventListener("click", () => loadHistory(true));

  render();
  fill(
    main,
    crumbs,
    title,
    status,
    problem,
    h(
      "section",
      { class: "details", "aria-label": "Details" },
      facts,
      h("div", { class: "actions" }, download, deleteButton),
    ),
    form,
    history,
    dialog,
  );
  if (ctx.navigated) title.focus();
  freshLink();
  loadHistory();
  contentSize(file.id).then(
    (bytes) => {
      sizeText.textContent = bytes === null ? "unknown" : size(bytes);
    },
    () => {
      sizeText.textContent = "unknown";
    },
  );
}
