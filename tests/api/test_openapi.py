"""The OpenAPI document is whole: what it refers to, it holds."""


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
