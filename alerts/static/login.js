"use strict";
// Login: POST JSON to /login; the server sets an HttpOnly session cookie.
document.getElementById("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const error = document.getElementById("login-error");
  error.hidden = true;
  const body = JSON.stringify({
    name: document.getElementById("name").value,
    password: document.getElementById("password").value,
  });
  let resp;
  try {
    resp = await fetch("/login", {
      method: "POST", body, credentials: "same-origin",
      headers: {"Content-Type": "application/json"},
    });
  } catch (e) {
    error.textContent = "The service cannot be reached.";
    error.hidden = false;
    return;
  }
  if (resp.ok) {
    window.location.assign("/");
    return;
  }
  error.textContent = resp.status === 429
    ? "Too many failed sign-ins. Wait a few minutes and try again."
    : "Wrong name or password.";
  error.hidden = false;
  document.getElementById("password").value = "";
});
