"""Request bodies built to break the parser get a 400 that says what is wrong, never a 500."""
import pytest

DEEP = 100_000  # far past Python's recursion limit, far below waitress's 1 MiB body limit


@pytest.mark.parametrize("opening, closing", [("[", "]"), ('{"a":', "}")])
def test_a_deeply_nested_menu_is_a_400_naming_the_nesting(app, opening, closing):
    body = (opening * DEEP + "1" + closing * DEEP).encode()
    answer = app.post("/menu", body, content_type="application/json", status=400)
    assert answer.json["error"] == "bad_json"
    assert "nested" in answer.json["message"] and "menu" in answer.json["message"], answer.json
    # Nothing was queued, and the app still answers.
    app.post_json("/menu", [{"comer": "pan"}], status=202)


def test_a_nested_menu_that_is_still_parsable_is_a_plain_bad_order(app):
    answer = app.post("/menu", b"[[[[[[[[[[1]]]]]]]]]]", content_type="application/json", status=400)
    assert answer.json["error"] == "bad_order"
