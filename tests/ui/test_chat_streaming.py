"""The chat page's answers: streamed as they are written, stopped, sent with the settings, shown as Markdown."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from tests.conftest import RegisterUpstream
from tests.support.fake_upstream import FakeUpstream, Script
from tests.ui.chat_page import ChatPage, recorded, screenshot_chat
from tests.ui.conftest import check_accessibility


async def test_an_answer_streams_in_as_it_is_written_then_shows_its_usage(
    signed_in_page: Page, register_upstream: RegisterUpstream, fake_upstream: FakeUpstream
) -> None:
    model = await register_upstream(Script(chunks=6, delay=0.5, text="word"))
    chat = await ChatPage(signed_in_page).open(model=model)
    await expect(chat.model).to_have_value(model)

    await chat.send("Hello there")
    answer = chat.answers.last
    body = chat.body(answer)
    await expect(body).to_contain_text("word1")
    early = await body.inner_text()
    await expect(body).to_contain_text("word3")
    later = await body.inner_text()
    assert await answer.get_attribute("aria-busy") == "true"  # both samples were taken while it streamed
    assert len(later) > len(early)

    await expect(answer).not_to_have_attribute("aria-busy", "true")
    await expect(body).to_have_text("word0 word1 word2 word3 word4 word5")
    await expect(answer.locator(".chat-usage")).to_have_text("Tokens: 5 prompt, 6 completion, 11 total")
    await expect(answer.locator(".chat-message-author")).to_have_text(model)
    sent = (await recorded(fake_upstream, model)).body
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["messages"] == [{"role": "user", "content": "Hello there"}]
    await expect(chat.title).to_have_text("Hello there")


async def test_stop_cancels_the_request_up_to_the_provider(
    signed_in_page: Page, register_upstream: RegisterUpstream, fake_upstream: FakeUpstream
) -> None:
    model = await register_upstream(Script(chunks=300, delay=0.1))
    chat = await ChatPage(signed_in_page).open(model=model)
    await chat.send("Tell me everything")
    answer = chat.answers.last
    await expect(chat.body(answer)).to_contain_text("tok2")
    await expect(chat.send_button).to_be_disabled()

    await chat.stop_button.click()

    gone = await recorded(fake_upstream, model, lambda r: r.client_gone_at is not None)
    assert gone.finished_at is None
    await expect(answer.locator(".chat-message-note")).to_have_text("Stopped: the answer ends here.")
    await expect(answer).not_to_have_attribute("aria-busy", "true")
    await expect(chat.stop_button).to_be_hidden()
    await expect(chat.send_button).to_be_enabled()
    assert "tok2" in await chat.body(answer).inner_text()  # what had arrived stays


async def test_the_settings_are_sent_with_the_request(
    signed_in_page: Page, register_upstream: RegisterUpstream, fake_upstream: FakeUpstream
) -> None:
    model = await register_upstream(Script(chunks=2))
    page = signed_in_page
    chat = await ChatPage(page).open(model=model)
    await page.get_by_label("System prompt").fill("Answer in one word.")
    await page.get_by_label("Temperature").fill("0.3")
    await page.get_by_label("Top p").fill("0.9")
    await page.get_by_label("Max tokens").fill("42")
    await page.get_by_label("Stop sequences").fill("END\nSTOP")
    await page.get_by_label("Seed").fill("7")

    await chat.ask("Hi")

    sent = (await recorded(fake_upstream, model)).body
    assert sent["messages"] == [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Hi"},
    ]
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"], sent["seed"]) == (0.3, 0.9, 42, 7)
    assert sent["stop"] == ["END", "STOP"]

    await page.reload()  # the settings are kept in the browser
    await ChatPage(page).ready()
    await expect(page.get_by_label("Max tokens")).to_have_value("42")
    await expect(page.get_by_label("System prompt")).to_have_value("Answer in one word.")


async def test_a_number_that_is_not_one_is_refused_next_to_its_field(
    signed_in_page: Page, register_upstream: RegisterUpstream, fake_upstream: FakeUpstream
) -> None:
    model = await register_upstream(Script(chunks=1))
    page = signed_in_page
    chat = await ChatPage(page).open(model=model)
    await page.get_by_label("Max tokens").fill("1.5")

    await chat.send("Hi")

    await expect(page.locator("#setting-max-tokens-error")).to_have_text("Enter a number, or leave it empty.")
    await expect(page.get_by_label("Max tokens")).to_be_focused()
    await expect(chat.answers).to_have_count(0)
    assert fake_upstream.requests_for(model) == []


async def test_without_streaming_the_answer_comes_whole(
    signed_in_page: Page, register_upstream: RegisterUpstream, fake_upstream: FakeUpstream
) -> None:
    model = await register_upstream(Script(chunks=3, text="part"))
    page = signed_in_page
    chat = await ChatPage(page).open(model=model)
    await page.get_by_label("Stream the answer").uncheck()

    answer = await chat.ask("Hi")

    await expect(chat.body(answer)).to_have_text("part0 part1 part2")
    await expect(answer.locator(".chat-usage")).to_have_text("Tokens: 5 prompt, 3 completion, 8 total")
    sent = (await recorded(fake_upstream, model)).body
    assert not sent.get("stream")


CODE_ANSWER = "Here is the function:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\nUse it **well**.\n"


async def test_an_answer_is_markdown_with_highlighted_code(
    signed_in_page: Page, register_upstream: RegisterUpstream
) -> None:
    model = await register_upstream(Script(chunks=2, delay=0.2, text=CODE_ANSWER))
    chat = await ChatPage(signed_in_page).open(model=model)

    answer = await chat.ask("Write an add function in Python")

    code = chat.body(answer).locator("pre code").first
    await expect(code).to_have_class(re.compile(r"\blanguage-python\b.*\bhljs\b"))
    await expect(code.locator(".hljs-keyword").first).to_have_text("def")
    await expect(chat.body(answer).locator("strong").first).to_have_text("well")
    await expect(answer.locator(".chat-usage")).to_be_visible()
    await check_accessibility(signed_in_page)
    await screenshot_chat(signed_in_page, "chat-answer")


HOSTILE = (
    'Look: <img src=x onerror="window.__pwned = 1"> <script>window.__pwned = 2</script>'
    ' <b onclick="window.__pwned = 3">bold</b> [a link](javascript:window.__pwned=4) and **strong**\n'
)


async def test_markup_in_an_answer_is_shown_as_text_never_run(
    signed_in_page: Page, register_upstream: RegisterUpstream
) -> None:
    # The page fixture fails the test on any CSP violation or script error, which parsing or running any of this
    # would be: the HTML in an answer is shown as text, and Markdown's own links are sanitised.
    model = await register_upstream(Script(chunks=1, text=HOSTILE))
    page = signed_in_page
    chat = await ChatPage(page).open(model=model)

    answer = await chat.ask("Say something")

    body = chat.body(answer)
    await expect(body).to_contain_text('<img src=x onerror="window.__pwned = 1">')
    await expect(body).to_contain_text("<script>window.__pwned = 2</script>")
    await expect(body.locator("strong")).to_have_text("strong")
    assert await body.locator("img, script, b").count() == 0
    await expect(body.get_by_text("a link")).not_to_have_attribute("href", re.compile("javascript"))
    await page.wait_for_timeout(300)  # an onerror would have run by now
    assert await page.evaluate("() => window.__pwned") is None
