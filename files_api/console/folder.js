// A folder's files, newest first, 50 to a page: List's own tokens walk it, so a folder of any
// size costs one page (and a one-file look at the next) per step, never the whole folder.

import { contentSize, listFiles, upload } from "./api.js";
import { h, fill, newId, size, when } from "./dom.js";

export const PAGE_SIZE = 50;

const COLUMNS = ["Name", "Size", "Type", "Labels", "Updated", "Expires"];

function row(file, sizes) {
  const sizeCell = h("span", { class: "pending" }, "…");
  sizes.push([file.id, sizeCell]);
  const labels = Object.entries(file.labels || {}).sort(([a], [b]) => (a < b ? -1 : 1));
  const cells = [
    h(
      "a",
      { href: `/console/files/${encodeURIComponent(file.id)}` },
      file.name || `(no name) ${file.id}`,
    ),
    sizeCell,
    file.mimeType || "",
    labels.length
      ? h(
          "ul",
          { class: "labels" },
          labels.map(([key, value]) => h("li", {}, `${key}=${value}`)),
        )
      : "",
    when(file.updatedAt),
    when(file.expiresAt),
  ];
  return h(
    "tr",
    {},
    cells.map((cell, i) =>
      h(i ? "td" : "th", { scope: i ? null : "row", "data-label": COLUMNS[i] }, cell),
    ),
  );
}

export function folderPage(main, folderId, ctx) {
  const title = h("h1", { tabindex: "-1" }, `Folder ${folderId}`);
  document.title = `Folder ${folderId} · Files console`;
  const status = h("p", { role: "status", class: "status" }, ctx.flash);
  const problem = h("div", { class: "problem" });
  const tbody = h("tbody");
  const table = h(
    "table",
    { class: "files" },
    h("caption", { class: "visually-hidden" }, `Files of folder ${folderId}, newest first`),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        COLUMNS.map((name) => h("th", { scope: "col" }, name)),
      ),
    ),
    tbody,
  );
  const empty = h("p", { class: "empty", hidden: true }, "This folder has no files yet.");
  const previous = h("button", { type: "button", disabled: true }, "Previous page");
  const next = h("button", { type: "button", disabled: true }, "Next page");
  const where = h("span", { class: "where" });
  const pager = h("nav", { class: "pager", "aria-label": "Pages" }, previous, where, next);

  const inputId = newId("upload");
  const picker = h("input", { id: inputId, type: "file", multiple: true });
  const uploads = h("ul", { class: "uploads" });
  const uploader = h(
    "section",
    { class: "upload", "aria-label": "Upload" },
    h("label", { for: inputId }, "Upload files"),
    picker,
    h("p", { class: "hint" }, "Or drop files onto the table."),
    uploads,
  );
  const listing = h("section", { class: "listing", "aria-label": "Files" }, table, empty, pager);
  fill(
    main,
    h("p", { class: "crumbs" }, h("a", { href: "/console/" }, "All folders")),
    title,
    status,
    problem,
    uploader,
    listing,
  );
  if (ctx.navigated) title.focus();

  // tokens[i] opens page i; tokens[i + 1] is known once page i is read.
  const tokens = [""];
  let page = 0;

  async function show(index) {
    previous.disabled = true;
    next.disabled = true;
    let body;
    try {
      ({ body } = await listFiles(folderId, PAGE_SIZE, tokens[index]));
    } catch (error) {
      if (!ctx.stillHere()) return;
      // Exactly what the API said (403, 404, 400), and no file of the folder.
      uploader.hidden = true;
      listing.hidden = true;
      fill(problem, h("p", { role: "alert", class: "alert" }, error.message));
      return;
    }
    if (!ctx.stillHere()) return;
    const files = body.files || [];
    if (!files.length && index > 0) {
      // The walk ended on an empty page (files deleted meanwhile): stay on the last one.
      await show(index - 1);
      return;
    }
    page = index;
    tokens.length = index + 1;
    const sizes = [];
    fill(
      tbody,
      files.map((file) => row(file, sizes)),
    );
    fillSizes(sizes, index);
    table.hidden = !files.length;
    empty.hidden = Boolean(files.length);
    const first = index * PAGE_SIZE + 1;
    where.textContent = files.length
      ? `Page ${index + 1}: files ${first}–${first + files.length - 1}`
      : "";
    previous.disabled = index === 0;
    const token = body.nextPageToken || "";
    if (!token) return;
    // A page with files always carries a token, and the walk ends with an empty page: look
    // one file ahead, so Next is offered only when there is a next page.
    try {
      const ahead = await listFiles(folderId, 1, token);
      if (!ctx.stillHere() || page !== index) return;
      if ((ahead.body.files || []).length) {
        tokens[index + 1] = token;
        next.disabled = false;
      }
    } catch {
      // Next stays off; the page itself is shown.
    }
  }

  /** Sizes come after the rows (a File carries none): a few HEADs at a time, never many. */
  async function fillSizes(cells, index) {
    const worker = async () => {
      for (let item = cells.shift(); item; item = cells.shift()) {
        if (!ctx.stillHere() || page !== index) return;
        const [fileId, cell] = item;
        try {
          const bytes = await contentSize(fileId);
          cell.textContent = bytes === null ? "—" : size(bytes);
        } catch {
          cell.textContent = "—";
        }
        cell.classList.remove("pending");
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
  }

  previous.addEventListener("click", () => show(page - 1));
  next.addEventListener("click", () => show(page + 1));

  async function uploadAll(files) {
    if (!files.length) return;
    status.textContent = `Uploading ${files.length} ${files.length === 1 ? "file" : "files"}…`;
    let done = 0;
    const items = files.map((file) => {
      const bar = h("progress", {
        max: String(file.size || 1),
        value: "0",
        "aria-label": `Uploading ${file.name}`,
      });
      const note = h("span", { class: "note" }, "waiting");
      uploads.append(h("li", {}, h("span", { class: "upload-name" }, file.name), bar, note));
      return { file, bar, note };
    });
    // One at a time: each file's progress is its own, and the server is not handed several
    // large bodies at once.
    for (const { file, bar, note } of items) {
      note.textContent = "sending";
      try {
        await upload(folderId, file, (sent, total) => {
          bar.max = total;
          bar.value = sent;
        });
        bar.value = bar.max;
        note.textContent = "uploaded";
        done += 1;
      } catch (error) {
        note.textContent = `failed: ${error.message}`;
        note.classList.add("error");
      }
    }
    if (!ctx.stillHere()) return;
    status.textContent = `Uploaded ${done} of ${files.length} ${files.length === 1 ? "file" : "files"}.`;
    await show(0); // newest first: the new files open the first page
  }

  picker.addEventListener("change", () => {
    const files = [...picker.files];
    picker.value = "";
    uploadAll(files);
  });
  listing.addEventListener("dragover", (event) => {
    event.preventDefault();
    listing.classList.add("dropping");
  });
  listing.addEventListener("dragleave", () => listing.classList.remove("dropping"));
  listing.addEventListener("drop", (event) => {
    event.preventDefault();
    listing.classList.remove("dropping");
    uploadAll([...event.dataTransfer.files]);
  });

  show(0);
}
