// Talking to the imagebatch API from the browser: the stored API key, JSON calls, uploads, downloads.

const KEY = "imagebatch.apiKey";

export const apiKey = {
  get: () => localStorage.getItem(KEY) || "",
  set: (value) => (value ? localStorage.setItem(KEY, value) : localStorage.removeItem(KEY)),
};

function authHeaders() {
  const key = apiKey.get();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(status === 401 ? `${detail} — paste a key under "API key" (top right)` : detail);
    this.status = status;
  }
}

async function failure(response) {
  let detail = response.statusText;
  try {
    const body = await response.json();
    detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch (_) { /* not JSON: keep the status text */ }
  return new ApiError(response.status, `${response.status}: ${detail}`);
}

export async function getJSON(path, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v != null));
  const url = query.toString() ? `${path}?${query}` : path;
  const response = await fetch(url, { headers: authHeaders() });
  if (!response.ok) throw await failure(response);
  return response.json();
}

export async function send(method, path) {
  const response = await fetch(path, { method, headers: authHeaders() });
  if (!response.ok) throw await failure(response);
  return response.status === 204 ? null : response.json();
}

// XMLHttpRequest rather than fetch: only it reports upload progress. POSTs to a job, training or evaluation route.
export function upload(form, onProgress, path = "/v1/jobs") {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", path);
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded, e.total);
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (_) { /* keep {} */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, `${xhr.status}: ${body.detail || xhr.statusText}`));
    };
    xhr.onerror = () => reject(new ApiError(0, "network error: is the API running?"));
    xhr.send(form);
  });
}

// Fetched with the key and handed to the browser as a file (a plain link could not send the key).
export async function download(path, filename) {
  const response = await fetch(path, { headers: authHeaders() });
  if (!response.ok) throw await failure(response);
  save(URL.createObjectURL(await response.blob()), filename);
}

function save(url, filename) {
  const link = Object.assign(document.createElement("a"), { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

// Images need the key too: without one the browser loads them directly (and caches them).
export async function imageURL(path) {
  if (!apiKey.get()) return path;
  const response = await fetch(path, { headers: authHeaders() });
  if (!response.ok) throw await failure(response);
  return URL.createObjectURL(await response.blob());
}

// Point an <img> at an API image; a fetched copy is released once the browser has decoded it.
export function showImage(img, path, onError = () => {}) {
  imageURL(path).then((url) => {
    if (url.startsWith("blob:")) img.addEventListener("load", () => URL.revokeObjectURL(url), { once: true });
    img.src = url;
  }).catch(onError);
}

// What a worker builds on request (Grad-CAM, a model export): asked again after Retry-After while the API answers 202.
async function fetchBuilt(path, params, onWait) {
  const url = `${path}?${new URLSearchParams(params)}`;
  for (;;) {
    const response = await fetch(url, { headers: authHeaders() });
    if (!response.ok) throw await failure(response);
    if (response.status !== 202) return response;
    onWait();
    const seconds = Number(response.headers.get("Retry-After")) || 2;
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  }
}

export async function builtImageURL(path, params = {}, onWait = () => {}) {
  return URL.createObjectURL(await (await fetchBuilt(path, params, onWait)).blob());
}

// A built file saved under the name the API gives it (Content-Disposition).
export async function downloadBuilt(path, params = {}, onWait = () => {}) {
  const response = await fetchBuilt(path, params, onWait);
  const named = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "");
  save(URL.createObjectURL(await response.blob()), named ? named[1] : "download");
}
