// A list page's two messages: its status line (what the last action did, or what the list holds) and its alert
// (what the API refused). Each action starts by clearing both, so neither is read as the new action's outcome.
import { confirmAction } from "./confirm.js";
import { handleSessionEnded } from "./layout.js";

export class PageMessages {
  constructor(status, alertBox) {
    this.status = status;
    this.alertBox = alertBox;
  }

  clear() {
    this.alertBox.hidden = true;
    this.status.textContent = "";
  }

  // The API's refusal in the alert; an ended session sends the visitor to log in instead.
  alert(error) {
    if (handleSessionEnded(error)) return;
    this.alertBox.textContent = error.message;
    this.alertBox.hidden = false;
  }

  // One action of the page: `action` (its API calls, then the list reloaded), then `done` in the status line, or
  // the refusal in the alert. Whether it succeeded.
  async run(action, done) {
    this.clear();
    try {
      await action();
    } catch (error) {
      this.alert(error);
      return false;
    }
    this.status.textContent = done;
    return true;
  }

  // An action that cannot be undone (a delete): `run` once the visitor confirms `question` (`confirmAction`).
  async runConfirmed(question, action, done) {
    return (await confirmAction(question)) && this.run(action, done);
  }
}
