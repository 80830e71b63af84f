// The REST face, as any client calls it: the JSON of the proto3 mapping, errors as
// google.rpc.Status, the key (when there is one) as `Authorization: Api-Key <key>`.

const KEY = "files-console-key"; // sessionStorage only: the key goes when the tab does

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY, key);
  else sessionStorage.removeItem(KEY);
}

/** A failed call: the HTTP status, the google.rpc.Status message and its field violations. */
export class ApiError extends Error {
  constructor(status, body) {
    const message = (body && body.message) || `the server answered HTTP ${status}`;
    super(message);
    this.status = status;
    this.code = body && body.code;
    this.violations = [];
    for (const detail of (body && body.details) || []) {
      if (detail["@type"] === "type.googleapis.com/google.rpc.BadRequest") {
        this.violations.push(...(detail.fieldViolations || []));
      }
    }
  }
}

/** Called with every 401 (UNAUTHENTICATED), so the app can ask for a key. */
let onUnauthenticated = () => {};
export function whenUnauthenticated(handler) {
  onUnauthenticated = handler;
}

function headers(extra = {}) {
  const key = apiKey();
  return key ? { Authorization: `Api-Key ${key}`, ...extra } : extra;
}

async function failure(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null; // not JSON: a proxy's page, say; the status still says what happened
  }
  const error = new ApiError(response.status, body);
  if (response.status === 401) onUnauthenticated(error);
  return error;
}

/** One call: resolves to {body, etag}, rejects with ApiError. */
export async function call(method, path, { body, ifMatch } = {}) {
  const extra = {};
  if (body !== undefined) extra["Content-Type"] = "application/json";
  if (ifMatch) extra["If-Match"] = ifMatch;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: headers(extra),
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, { message: "the server could not be reached" });
  }
  if (!response.ok) throw await failure(response);
  return { body: await response.json(), etag: response.headers.get("ETag") };
}

const FILES = "/files/v1/files";
const one = (fileId) => `${FILES}/${encodeURIComponent(fileId)}`;

export function listFiles(folderId, pageSize, pageToken = "") {
  const query = new URLSearchParams({ folderId, pageSize: String(pageSize) });
  if (pageToken) query.set("pageToken", pageToken);
  return call("GET", `${FILES}?${query}`);
}

export const getFile = (fileId) => call("GET", one(fileId));
export const getUrl = (fileId) => call("GET", `${FILES}:getUrl?${new URLSearchParams({ fileId })}`);
export const updateFile = (fileId, body, etag) =>
  call("PATCH", one(fileId), { body, ifMatch: etag });
export const deleteFile = (fileId, etag) => call("DELETE", one(fileId), { ifMatch: etag });

/**
 * A fresh signed link to the content, as a path on this listener (the link's host is the
 * server's own idea of its address, which need not be the one this page came from).
 */
export async function signedLink(fileId) {
  const { body } = await getUrl(fileId);
  const url = new URL(body.url, location.href);
  return { path: url.pathname + url.search, expires: Number(url.searchParams.get("expires")) || 0 };
}

/**
 * The content's size in bytes. A File carries none, so it is read off a HEAD of the signed
 * link: its Content-Length, with no content read and no activity counted.
 */
export async function contentSize(fileId) {
  const { path } = await signedLink(fileId);
  const response = await fetch(path, { method: "HEAD", cache: "no-store" });
  return response.ok ? response.headers.get("Content-Length") : null;
}

export function auditLog(fileId, pageSize, pageToken = "") {
  const query = new URLSearchParams({ pageSize: String(pageSize) });
  if (pageToken) query.set("pageToken", pageToken);
  return call("GET", `${one(fileId)}/audit?${query}`);
}

/**
 * Whether the server wants a key, and whether the one held works: List with no folder is
 * refused before anything else is read, with 401 when the credentials are missing or wrong
 * and 400 (no folder) when they are fine or not needed.
 */
export async function checkKey() {
  try {
    await call("GET", `${FILES}?pageSize=1`);
  } catch (error) {
    if (error.status === 401) return false;
  }
  return true;
}

/**
 * Create, as multipart/form-data (the REST face takes a `bytes` field's part as raw bytes:
 * no base64 to build in memory), with XMLHttpRequest for its upload progress events.
 * `progress(sent, total)` is called as the body goes out; resolves to the File.
 */
export function upload(folderId, file, progress) {
  const form = new FormData();
  form.append("folderId", folderId);
  form.append("name", file.name);
  form.append("content", file, file.name);
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", FILES);
    for (const [name, value] of Object.entries(headers())) request.setRequestHeader(name, value);
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) progress(event.loaded, event.total);
    });
    request.addEventListener("load", () => {
      let body = null;
      try {
        body = JSON.parse(request.responseText);
      } catch {
        body = null;
      }
      if (request.status === 200) resolve(body);
      else {
        const error = new ApiError(request.status, body);
        if (request.status === 401) onUnauthenticated(error);
        reject(error);
      }
    });
    request.addEventListener("error", () =>
      reject(new ApiError(0, { message: "the upload could not reach the server" })),
    );
    request.send(form);
  });
}
