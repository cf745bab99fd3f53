// Form errors shown the GOV.UK way: a summary above the form linking to each field, and the message again
// next to its field. The messages are the API's own (an ApiError's message and param).

function summaryOf(form) {
  return document.getElementById(form.dataset.errorSummary || "error-summary");
}

export function clearErrors(form) {
  const summary = summaryOf(form);
  if (summary) {
    summary.hidden = true;
    summary.querySelector(".error-summary-list").replaceChildren();
  }
  for (const field of form.querySelectorAll(".field-invalid")) field.classList.remove("field-invalid");
  for (const message of form.querySelectorAll(".field-error")) {
    message.hidden = true;
    message.textContent = "";
  }
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

// Show `error` (an ApiError, or any Error) for `form`; the field named by `error.param`, if the form has one,
// is marked too. The summary takes the focus so that a screen reader reads it.
export function showError(form, error) {
  clearErrors(form);
  const summary = summaryOf(form);
  const input = error.param ? form.elements.namedItem(error.param) : null;
  const item = document.createElement("li");
  if (input && input.id) {
    const link = document.createElement("a");
    link.href = `#${input.id}`;
    link.textContent = error.message;
    item.append(link);
    input.setAttribute("aria-invalid", "true");
    input.closest(".field")?.classList.add("field-invalid");
    const message = document.getElementById(`${input.id}-error`);
    if (message) {
      message.textContent = error.message;
      message.hidden = false;
    }
  } else {
    item.textContent = error.message;
  }
  if (!summary) throw new Error(`showError: no error summary for form #${form.id}`); // a page's mistake
  summary.querySelector(".error-summary-list").append(item);
  summary.hidden = false;
  summary.focus();
}

// The form's named controls as an object, for a JSON body.
export function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}
