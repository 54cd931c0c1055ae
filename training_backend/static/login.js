// The sign-in form: POST /api/auth/login, then on to the page that asked for it.
import { api, pageData, showError } from "./common.js";

const form = document.getElementById("login-form");
const errorBox = document.getElementById("login-error");

/**
 * Where to go after signing in: `next` if it is a page of this site, else the Training
 * Agent page. The server checks it too; this check is the browser's own reading of the
 * URL (which drops tabs and newlines and reads a backslash as a slash).
 */
function sameOriginTarget(next) {
  try {
    const url = new URL(next, location.origin);
    if (url.origin === location.origin) return url.pathname + url.search + url.hash;
  } catch {
    // not a URL at all
  }
  return "/workers";
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = form.elements.name.value.trim();
  const password = form.elements.password.value;
  if (!name || !password) {
    showError(errorBox, new Error("Enter your user name and password."));
    (name ? form.elements.password : form.elements.name).focus();
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await api("/api/auth/login", { method: "POST", body: { name, password } });
    location.replace(sameOriginTarget(pageData().next));
  } catch (error) {
    showError(errorBox, error);
    form.elements.password.select();
  } finally {
    button.disabled = false;
  }
});
