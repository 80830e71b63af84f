// The console: one page whose path says what it shows (`/console/`, `/console/folders/{id}`,
// `/console/files/{id}`); the server answers this app for any of them, so a typed or reloaded
// URL works. Links move with the History API; every page reads its data over the REST face.

import { apiKey, checkKey, setApiKey, whenUnauthenticated } from "./api.js";
import { h, fill, newId } from "./dom.js";
import { filePage } from "./file.js";
import { folderPage } from "./folder.js";

const main = document.getElementById("main");
const signOut = document.getElementById("sign-out");
const who = document.getElementById("who");

// Each render gets a number; a page's late answer renders only while its number is current,
// so a slow request never paints over the page the person moved on to (or the sign-in form).
let generation = 0;
let flash = ""; // a status message for the next page: "Deleted x" after a delete

function context(navigated) {
  const mine = ++generation;
  const message = flash;
  flash = "";
  return {
    stillHere: () => mine === generation,
    navigate,
    navigated, // focus goes to the new page's heading, as a page load would put it at the top
    flash: message,
    setFlash: (text) => {
      flash = text;
    },
  };
}

export function navigate(path) {
  history.pushState(null, "", path);
  route(true);
}

function showKeyState() {
  const signedIn = Boolean(apiKey());
  signOut.hidden = !signedIn;
  who.textContent = signedIn ? "Signed in with an API key" : "";
}

function route(navigated = false) {
  showKeyState();
  const path = location.pathname;
  const ctx = context(navigated);
  let match;
  try {
    if ((match = path.match(/^\/console\/folders\/([^/]+)\/?$/))) {
      folderPage(main, decodeURIComponent(match[1]), ctx);
    } else if ((match = path.match(/^\/console\/files\/([^/]+)\/?$/))) {
      filePage(main, decodeURIComponent(match[1]), ctx);
    } else if (path === "/console/" || path === "/console") {
      homePage(ctx);
    } else {
      notFound();
    }
  } catch (error) {
    if (!(error instanceof URIError)) throw error;
    notFound(); // a malformed %-escape in a typed URL
  }
}

function heading(text) {
  const title = h("h1", { tabindex: "-1" }, text);
  document.title = `${text} · Files console`;
  return title;
}

function notFound() {
  fill(
    main,
    heading("Not found"),
    h("p", {}, "The console has no page here. ", h("a", { href: "/console/" }, "Open a folder")),
  );
}

function homePage(ctx) {
  const id = newId("folder");
  const errorId = newId("folder-error");
  const input = h("input", { id, name: "folder", autocomplete: "on", spellcheck: "false" });
  const error = h("p", { id: errorId, class: "field-error", hidden: true });
  const form = h(
    "form",
    {
      class: "open-folder",
      on: {
        submit: (event) => {
          event.preventDefault();
          const folderId = input.value.trim();
          if (!folderId) {
            error.textContent = "Enter a folder id.";
            error.hidden = false;
            input.setAttribute("aria-invalid", "true");
            input.setAttribute("aria-describedby", errorId);
            input.focus();
            return;
          }
          navigate(`/console/folders/${encodeURIComponent(folderId)}`);
        },
      },
    },
    h("label", { for: id }, "Folder"),
    h("div", { class: "inline" }, input, h("button", { type: "submit" }, "Open")),
    error,
  );
  fill(
    main,
    heading("Open a folder"),
    h("p", {}, "The files of a folder, newest first, with their labels and expiry."),
    form,
    ctx.flash ? h("p", { role: "status" }, ctx.flash) : null,
  );
  input.focus();
}

/** The sign-in form; `error` is the 401 that brought it, shown when a key had been sent. */
function signInPage(error) {
  const hadKey = Boolean(apiKey());
  setApiKey(null);
  showKeyState();
  generation += 1; // whatever page asked is not painted over this form
  const id = newId("api-key");
  const input = h("input", { id, type: "password", autocomplete: "off", required: true });
  const form = h(
    "form",
    {
      class: "sign-in",
      on: {
        submit: async (event) => {
          event.preventDefault();
          setApiKey(input.value.trim());
          if (await checkKey()) route(); // else the 401 brought this form back, with its alert
        },
      },
    },
    h("label", { for: id }, "API key"),
    h("div", { class: "inline" }, input, h("button", { type: "submit" }, "Sign in")),
  );
  fill(
    main,
    heading("Sign in"),
    hadKey
      ? h("p", { role: "alert", class: "alert" }, `The key was not accepted: ${error.message}`)
      : h("p", {}, "This server needs an API key (files-api keys add makes one)."),
    form,
    h("p", { class: "hint" }, "The key is kept in this tab only, until you sign out or close it."),
  );
  input.focus();
}

whenUnauthenticated(signInPage);

signOut.addEventListener("click", () => {
  setApiKey(null);
  signInPage(null);
  main.append(h("p", { role: "status" }, "Signed out."));
});

document.addEventListener("click", (event) => {
  // Links inside the console move without a reload; a modified click opens as usual.
  const link = event.target.closest("a[href]");
  if (!link || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith("/console/")) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});

window.addEventListener("popstate", () => route(true));

// Whether the server wants a key is learnt from a 401; with none held, the sign-in form.
if (await checkKey()) route();
