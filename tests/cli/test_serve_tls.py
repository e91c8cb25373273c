"""`serve` over HTTPS checks its certificate and key before it makes the first admin."""

from tests.cli.test_serve import TOKEN_LINE, metalyard, serve
from tests.peers.postgres import free_port
from tests.peers.tls import self_signed


def test_a_broken_certificate_or_key_is_named_and_keeps_the_token(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    cert, key = self_signed(tmp_path / "one")
    _, other_key = self_signed(tmp_path / "two")
    cases = [
        (tmp_path / "nope.pem", key, f"METALYARD_TLS_CERT: {tmp_path / 'nope.pem'} does not exist"),
        (cert, tmp_path / "nope.pem", f"METALYARD_TLS_KEY: {tmp_path / 'nope.pem'} does not exist"),
        (tmp_path, key, f"METALYARD_TLS_CERT: {tmp_path} is a directory, not a file"),
        (key, key, f"METALYARD_TLS_CERT: {key} holds no PEM certificate"),
        (cert, cert, f"METALYARD_TLS_KEY: {cert} holds no PEM private key"),
        (cert, other_key, f"METALYARD_TLS_KEY: {other_key} is not the key of the certificate"),
    ]
    for tls_cert, tls_key, message in cases:
        refused = metalyard(
            tmp_path,
            "serve",
            "--port",
            str(free_port()),
            tls_cert=str(tls_cert),
            tls_key=str(tls_key),
        )
        assert refused.returncode == 7, refused.stderr
        assert refused.stderr.startswith(f"error: {message}"), refused.stderr
        assert "token" not in refused.stdout + refused.stderr
    with serve(tmp_path, "https", tls_cert=str(cert), tls_key=str(key)) as server:
        token = TOKEN_LINE.search(server.output).group(1)  # not spent by the refusals
        hint = f"metalyard region add lab-1 --url {server.url} --token {token} --ca-bundle {cert}"
        assert hint in server.output
