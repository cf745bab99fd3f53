// The header of every page: who is signed in (from the API, so a role change shows at once) and logging out.
import { ApiError, get, post } from "./api.js";

export const ROLE_LABELS = { user: "User", power_user: "Power user", manager: "Manager", admin: "Admin" };
const ROLE_RANK = { user: 0, power_user: 1, manager: 2, admin: 3 };

let current = null;

// The signed-in user ({id, username, role}), fetched once per page; rejects with an ApiError.
export function whoami() {
  current ??= get("/bodhi/v1/user");
  return current;
}

export function roleAtLeast(role, needed) {
  return (ROLE_RANK[role] ?? -1) >= ROLE_RANK[needed];
}

export function loginUrl() {
  return `/ui/login/?next=${encodeURIComponent(location.pathname + location.search)}`;
}

// For page modules: send the visitor to log in again when the API says their session has ended.
export function handleSessionEnded(error) {
  if (error instanceof ApiError && error.status === 401) {
    location.assign(loginUrl());
    return true;
  }
  return false;
}

async function showUser() {
  let user;
  try {
    user = await whoami();
  } catch (error) {
    handleSessionEnded(error);
    return;
  }
  document.getElementById("account-name").textContent = user.username;
  document.getElementById("account-role").textContent = ROLE_LABELS[user.role] ?? user.role;
  for (const item of document.querySelectorAll("[data-min-role]")) {
    item.hidden = !roleAtLeast(user.role, item.dataset.minRole);
  }
}

async function logOut(button) {
  button.disabled = true;
  try {
    await post("/bodhi/v1/auth/logout");
  } finally {
    location.assign("/ui/login/");
  }
}

if (document.body.hasAttribute("data-signed-in")) {
  showUser();
  const button = document.getElementById("logout");
  button.addEventListener("click", () => logOut(button));
}
