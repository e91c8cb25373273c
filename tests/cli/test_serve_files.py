"""What `serve` leaves on disk: private to its user, and only where it was told."""

import os
import stat

from tests.cli.test_serve import metalyard, serve


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_dir_and_database_files_are_private_whatever_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with serve(tmp_path):
            pass
    finally:
        os.umask(old)
    data = tmp_path / "data"
    assert mode(data) == 0o700
    files = [p for p in data.iterdir() if p.name.startswith("metalyard.db")]
    assert {p.name for p in files} >= {"metalyard.db"}
    assert {p.name: mode(p) for p in files} == {p.name: 0o600 for p in files}


def test_an_sqlite_url_in_a_missing_directory_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'nonexistent' / 'dir' / 'x.db'}"
    for command in (("serve", "--port", "0"), ("db", "upgrade")):
        refused = metalyard(tmp_path, *command, database_url=url)
        assert refused.returncode == 7
        assert refused.stderr.startswith(
            f"error: METALYARD_DATABASE_URL: the directory {tmp_path / 'nonexistent' / 'dir'} "
            "of the SQLite database does not exist"
        )
    assert not (tmp_path / "nonexistent").exists()


def test_a_data_dir_that_cannot_be_made_is_named(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")
    refused = metalyard(tmp_path, "serve", "--port", "0", data_dir=str(blocked / "data"))
    assert refused.returncode == 7
    assert refused.stderr.startswith(
        f"error: METALYARD_DATA_DIR: cannot make the data directory {blocked / 'data'}: "
    )
