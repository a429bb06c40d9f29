// Sign in (`POST /v1/sessions`, which sets the HttpOnly session cookie) and sign up
// (`POST /v1/accounts`, then sign in), each returning to `?next=`.

import { h, field, link, notice } from "../dom.js";
import { api, currentAccount, signedIn, ApiError } from "../api.js";

const MIN_PASSWORD = 10;

function retryWords(error) {
  if (error instanceof ApiError && error.status === 429 && error.retryAfterS) {
    const s = Math.ceil(error.retryAfterS);
    return ` Try again in ${s >= 120 ? `${Math.ceil(s / 60)} minutes` : `${s} seconds`}.`;
  }
  return "";
}

function invalid(input, on) {
  if (on) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

async function signedInNote(ctx, next) {
  try {
    const account = await currentAccount();
    if (account && ctx.live) {
      ctx.error.el.after(
        h("p", { class: "banner" }, `You are signed in as ${account.display_name}. `, link(next, "Continue")),
      );
    }
  } catch {
    // The form works either way.
  }
}

export async function signIn(ctx) {
  ctx.title("Sign in");
  const next = ctx.safeNext(ctx.query.get("next"));
  const email = h("input", { type: "email", name: "email", autocomplete: "username", required: true, testid: "signin-email" });
  const password = h("input", { type: "password", name: "password", autocomplete: "current-password", required: true, testid: "signin-password" });
  const submit = h("button", { type: "submit", class: "button button--primary", testid: "signin-submit" }, "Sign in");
  const status = notice();
  const form = h("form", { class: "form", novalidate: true, "aria-labelledby": "signin-h" },
    h("h2", { id: "signin-h", class: "visually-hidden" }, "Your account"),
    field("signin-email", "Email", email),
    field("signin-password", "Password", password),
    submit, status);
  const signup = h("p", {}, "New here? ", link(next === "/" ? "/signup" : `/signup?next=${encodeURIComponent(next)}`, "Create an account"), ".");
  ctx.main.append(form, signup);
  signedInNote(ctx, next);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    ctx.error.clear();
    invalid(email, !email.value.trim());
    invalid(password, !password.value);
    if (!email.value.trim() || !password.value) {
      ctx.error.show("Enter your email and your password.");
      (email.value.trim() ? password : email).focus();
      return;
    }
    submit.disabled = true;
    status.textContent = "Signing in…";
    try {
      await api("/v1/sessions", { method: "POST", body: { email: email.value.trim(), password: password.value }, signal: ctx.signal });
      await signedIn().catch(() => null);
      status.textContent = "Signed in.";
      ctx.navigate(next, { replace: true });
    } catch (error) {
      status.textContent = "";
      submit.disabled = false;
      if (!ctx.live) return;
      if (error instanceof ApiError) ctx.error.show(error.message + retryWords(error));
      else ctx.fail(error);
      password.focus();
    }
  });
}

export async function signUp(ctx) {
  ctx.title("Create an account");
  const next = ctx.safeNext(ctx.query.get("next"));
  const name = h("input", { type: "text", name: "display_name", autocomplete: "name", required: true, maxlength: "64", testid: "signup-name" });
  const email = h("input", { type: "email", name: "email", autocomplete: "email", required: true, testid: "signup-email" });
  const password = h("input", { type: "password", name: "password", autocomplete: "new-password", required: true, minlength: String(MIN_PASSWORD), maxlength: "128", testid: "signup-password" });
  const submit = h("button", { type: "submit", class: "button button--primary", testid: "signup-submit" }, "Create account");
  const status = notice();
  const fields = { display_name: name, email, password };
  const form = h("form", { class: "form", novalidate: true, "aria-labelledby": "signup-h" },
    h("h2", { id: "signup-h", class: "visually-hidden" }, "Your details"),
    field("signup-name", "Your name", name, "Shown at the top of the page when you are signed in."),
    field("signup-email", "Email", email),
    field("signup-password", "Password", password, `At least ${MIN_PASSWORD} characters.`),
    submit, status);
  ctx.main.append(form, h("p", {}, "Already have an account? ", link(next === "/" ? "/signin" : `/signin?next=${encodeURIComponent(next)}`, "Sign in"), "."));
  signedInNote(ctx, next);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    ctx.error.clear();
    Object.values(fields).forEach((input) => invalid(input, false));
    const problems = [];
    if (!name.value.trim()) problems.push([name, "Enter your name."]);
    if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email.value.trim())) problems.push([email, "Enter an email address such as name@example.com."]);
    if ([...password.value].length < MIN_PASSWORD) problems.push([password, `Choose a password of at least ${MIN_PASSWORD} characters.`]);
    if (problems.length) {
      problems.forEach(([input]) => invalid(input, true));
      ctx.error.show(problems.map(([, text]) => text).join(" "));
      problems[0][0].focus();
      return;
    }
    submit.disabled = true;
    status.textContent = "Creating your account…";
    const credentials = { email: email.value.trim(), password: password.value };
    try {
      await api("/v1/accounts", { method: "POST", body: { ...credentials, display_name: name.value.trim() }, signal: ctx.signal });
    } catch (error) {
      status.textContent = "";
      submit.disabled = false;
      if (!ctx.live) return;
      ctx.fail(error);
      const p = error instanceof ApiError ? error.problem : {};
      const input = fields[p.field];
      if (input) {
        invalid(input, true);
        input.focus();
      }
      if (error.code === "email_taken") {
        ctx.error.show(error.message, " ", link(`/signin?next=${encodeURIComponent(next)}`, "Sign in instead"));
      } else if (error.status === 429) {
        ctx.error.show(error.message + retryWords(error));
      }
      return;
    }
    status.textContent = "Account created. Signing you in…";
    try {
      await api("/v1/sessions", { method: "POST", body: credentials, signal: ctx.signal });
      await signedIn().catch(() => null);
      ctx.navigate(next, { replace: true });
    } catch (error) {
      submit.disabled = false;
      status.textContent = "";
      if (!ctx.live) return;
      ctx.error.show(`Your account was created, but signing in failed: ${error.message}`, " ", link(`/signin?next=${encodeURIComponent(next)}`, "Sign in"));
    }
  });
}
