// A modal question before something that cannot be undone (deleting a token or a user): a native <dialog>,
// so the focus stays inside it and Escape cancels. Resolves true only when the person confirms.
import { h } from "./dom.js";

let opened = 0;

export function confirmAction({ title, message, confirmLabel }) {
  const id = `confirm-${++opened}`;
  const returnTo = document.activeElement;
  const cancel = h("button", { type: "button", class: "button button-secondary" }, "Cancel");
  const confirm = h("button", { type: "button", class: "button button-danger" }, confirmLabel);
  const dialog = h(
    "dialog",
    { class: "confirm-dialog", "aria-labelledby": `${id}-title`, "aria-describedby": `${id}-text` },
    h("h2", { id: `${id}-title`, class: "confirm-title" }, title),
    h("p", { id: `${id}-text` }, message),
    h("div", { class: "confirm-actions" }, confirm, cancel),
  );
  return new Promise((resolve) => {
    const finish = (answer) => {
      dialog.close();
      dialog.remove();
      if (returnTo instanceof HTMLElement && returnTo.isConnected) returnTo.focus();
      resolve(answer);
    };
    confirm.addEventListener("click", () => finish(true));
    cancel.addEventListener("click", () => finish(false));
    dialog.addEventListener("cancel", (event) => {
      event.preventDefault(); // Escape: answer no, and clean up as Cancel does
      finish(false);
    });
    document.body.append(dialog);
    dialog.showModal();
    cancel.focus(); // the harmless choice has the focus
  });
}
