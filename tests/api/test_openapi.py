"""The OpenAPI document is whole: what it refers to, it holds; its pages work offline."""

import re

import pytest
from fastapi.testclient import TestClient


def test_every_reference_in_the_openapi_document_resolves(app):
    document = app.openapi()
    references = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                references.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert references
    for reference in set(references):
        node = document
        for part in reference.removeprefix("#/").split("/"):
            assert part in node, f"{reference} does not resolve"
            node = node[part]


def test_the_import_documents_its_body(app):
    body = app.openapi()["paths"]["/v1/assets/import"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert body["required"] is True
    assert schema["properties"]["assets"]["items"] == {"$ref": "#/components/schemas/AssetCreate"}
    assert schema["properties"]["assets"]["maxItems"] == 10_000


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_docs_load_everything_from_this_server(app, page):
    """A management network is often offline: the docs must not need a CDN."""
    with TestClient(app) as anonymous:
        html = anonymous.get(page)
        assert html.status_code == 200
        sources = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", html.text)
        assert sources and "/openapi.json" in sources
        for source in sources:
            assert not re.match(r"^(https?:)?//", source), f"{page} loads {source} from elsewhere"
            assert anonymous.get(source).status_code == 200, source


def test_every_body_documents_the_415_of_a_body_not_sent_as_json(app):
    operations = [op for ops in app.openapi()["paths"].values() for op in ops.values()]
    with_body = [op for op in operations if "requestBody" in op]
    assert with_body and all("415" in op["responses"] for op in with_body)
    assert not [
        op["operationId"]
        for op in operations
        if "requestBody" not in op and "415" in op["responses"]
    ]


def test_schema_names_are_plain_names(app):
    """Two models of one name get their module path in the name: `metalyard__…__Decision`."""
    assert [name for name in app.openapi()["components"]["schemas"] if "__" in name] == []
