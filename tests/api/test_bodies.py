"""A body the API cannot read gets an answer that says what is wrong with it."""

import pytest


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/v1/sites", b'{"name": ', "body: not valid JSON: Expecting value at character 9"),
        ("/v1/sites", b"", "body: required: send a JSON object"),
        ("/v1/sites", b"[1]", "body: must be a JSON object"),
        ("/v1/assets/import", b"[1]", "body: must be a JSON object"),
        ("/v1/assets/import", b'{"assets": [', "body: not valid JSON: EOF while parsing"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_named_as_the_body(client, path, body, message):
    answer = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 422
    assert answer.json()["message"].startswith(message)
    assert [problem["field"] for problem in answer.json()["details"]] == ["body"]


@pytest.mark.parametrize(
    ("path", "body", "listed"),
    [
        ("/v1/sites", b'{"name": "dub1"}', "/v1/sites"),
        ("/v1/assets/import", b'{"assets": [{"serial": "A1"}]}', "/v1/assets"),  # read raw
    ],
)
@pytest.mark.parametrize("content_type", ["text/csv", "application/x-www-form-urlencoded", None])
def test_a_body_not_sent_as_json_is_a_415_saying_so(client, content_type, path, body, listed):
    headers = {"Content-Type": content_type} if content_type else {}
    answer = client.post(path, content=body, headers=headers)
    assert answer.status_code == 415
    assert answer.json()["code"] == "unsupported_media_type"
    assert "Content-Type: application/json" in answer.json()["message"]
    assert client.get(listed).json()["items"] == []
    sent = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert sent.status_code == 201
