"""A batched sequence's text: whole characters only, nothing past a stop string, what was held back sent at the end."""

from __future__ import annotations

from bodhi_local_worker.text_stream import TextStream


def feed_all(stream: TextStream, pieces: list[bytes]) -> list[str]:
    return [stream.feed(piece) for piece in pieces]


def test_text_without_stops_goes_out_as_it_comes() -> None:
    stream = TextStream([])
    assert feed_all(stream, [b"Hel", b"lo", b" world"]) == ["Hel", "lo", " world"]
    assert stream.flush() == ""
    assert stream.text == "Hello world"


def test_a_character_split_over_two_tokens_goes_out_whole() -> None:
    stream = TextStream([])
    euro = "€".encode()  # three bytes
    assert feed_all(stream, [b"a" + euro[:1], euro[1:2], euro[2:] + b"b"]) == ["a", "", "€b"]


def test_a_stop_string_across_tokens_ends_the_text_before_it() -> None:
    stream = TextStream(["</s>", "STOP"])
    sent = feed_all(stream, [b"one <", b"/", b"s> two"])
    assert sent == ["one ", "", ""]  # "<" and "/" held back: they could start "</s>"
    assert stream.stopped
    assert stream.feed(b"more") == ""
    assert stream.flush() == ""
    assert stream.text == "one "


def test_held_back_text_that_is_no_stop_string_goes_out_later() -> None:
    stream = TextStream(["STOP"])
    assert feed_all(stream, [b"ST", b"O", b"RY"]) == ["", "", "STORY"]
    assert stream.feed(b" ST") == " "
    assert stream.flush() == "ST"  # the end of the sequence: nothing can complete the stop string any more
    assert not stream.stopped
    assert stream.text == "STORY ST"


def test_the_earliest_stop_string_wins() -> None:
    stream = TextStream(["b", "abc"])
    assert stream.feed(b"xxabcd") == "xx"  # "abc" starts before "b"
    assert stream.stopped
