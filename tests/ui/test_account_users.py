"""The users page (`/ui/users/`) in a real browser: a manager adds a user, changes its role and deletes it."""

from __future__ import annotations

import uuid

from playwright.async_api import Page, expect

from tests.ui.conftest import MakeUser, check_accessibility, log_in, screenshot


async def test_a_manager_adds_a_user_changes_its_role_and_deletes_it(signed_in_page: Page) -> None:
    page = signed_in_page
    me = await page.locator("#account-name").inner_text()
    await page.goto("/ui/users/")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Users")
    await expect(page.locator("#users-table tbody tr", has_text=me)).to_contain_text("(you)")

    name = f"new-{uuid.uuid4().hex[:8]}"
    await page.get_by_label("Username").fill(name)
    await page.get_by_label("Password").fill("new-user-pa55word")
    await page.get_by_label("Role", exact=True).select_option("admin")  # above a manager: the API refuses
    await page.get_by_role("button", name="Add user").click()
    await expect(page.locator("#user-error-summary")).to_be_focused()
    await expect(page.locator("#user-role-error")).to_have_text(
        "You cannot grant `admin`: it is above your role `manager`."
    )
    await page.get_by_label("Role", exact=True).select_option("power_user")
    await page.get_by_role("button", name="Add user").click()
    await expect(page.locator("#users-status")).to_have_text(f"Added {name} as Power user.")
    await expect(page.locator("#user-error-summary")).to_be_hidden()
    row = page.locator("#users-table tbody tr", has_text=name)
    await expect(row.get_by_label(f"Role of {name}")).to_have_value("power_user")
    await check_accessibility(page)
    await screenshot(page, "users")

    await row.get_by_label(f"Role of {name}").select_option("manager")
    await row.get_by_role("button", name=f"Change role of {name}").click()
    await expect(page.locator("#users-status")).to_have_text(f"{name} is now Manager.")
    users = (await (await page.request.get("/bodhi/v1/users")).json())["data"]
    assert [u["role"] for u in users if u["username"] == name] == ["manager"]

    await row.get_by_role("button", name=f"Delete {name}").click()
    dialog = page.get_by_role("dialog", name=f"Delete the user {name}?")
    await expect(dialog).to_be_visible()
    await check_accessibility(page)
    await screenshot(page, "users-delete-dialog")
    await dialog.get_by_role("button", name="Delete user").click()
    await expect(page.locator("#users-status")).to_have_text(f"Deleted {name}.")
    await expect(row).to_have_count(0)
    users = (await (await page.request.get("/bodhi/v1/users")).json())["data"]
    assert name not in [u["username"] for u in users]


async def test_a_manager_cannot_act_on_an_admin(signed_in_page: Page) -> None:
    page = signed_in_page
    await page.goto("/ui/users/")
    admins = page.locator("#users-table tbody tr", has=page.get_by_text("Admin", exact=True))
    await expect(admins.first).to_contain_text("Above your role")
    await expect(admins.first.get_by_role("button")).to_have_count(0)


async def test_a_power_user_gets_the_not_for_your_role_page(page: Page, make_user: MakeUser) -> None:
    await log_in(page, await make_user("power_user"))
    response = await page.goto("/ui/users/")
    assert response is not None
    assert response.status == 403
    await expect(page.get_by_role("heading", level=1)).to_have_text("This page is not for your role")
    await expect(page.get_by_role("main")).to_contain_text("It needs the role Manager or higher")


async def test_a_manager_limits_the_models_a_user_may_use(signed_in_page: Page, make_user: MakeUser) -> None:
    page = signed_in_page
    target = await make_user("user")
    await page.goto("/ui/users/")
    row = page.locator("#users-table tbody tr", has_text=target.username)
    models = row.get_by_label(f"Models of {target.username}")
    await expect(models).to_have_value("")  # every model
    await expect(models).to_have_attribute("placeholder", "All models")

    await models.fill("openai/*, local-model")
    await row.get_by_role("button", name=f"Save models of {target.username}").click()
    await expect(page.locator("#users-status")).to_have_text(f"{target.username} may now use openai/*, local-model.")
    await expect(models).to_have_value("openai/*, local-model")
    users = (await (await page.request.get("/bodhi/v1/users")).json())["data"]
    assert [u["allowed_models"] for u in users if u["username"] == target.username] == [["openai/*", "local-model"]]
    await check_accessibility(page)
    await screenshot(page, "users-models")

    await models.fill("")
    await row.get_by_role("button", name=f"Save models of {target.username}").click()
    await expect(page.locator("#users-status")).to_have_text(f"{target.username} may now use every model.")
    users = (await (await page.request.get("/bodhi/v1/users")).json())["data"]
    assert [u["allowed_models"] for u in users if u["username"] == target.username] == [None]
