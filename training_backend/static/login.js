// The sign-in form: POST /api/auth/login, then on to the page that asked for it.
import { api, pageData, showError } from "./common.js";

const form = document.getElementById("login-form");
const errorBox = document.getElementById("login-error");

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
    location.replace(pageData().next);
  } catch (error) {
    showError(errorBox, error);
    form.elements.password.select();
  } finally {
    button.disabled = false;
  }
});
