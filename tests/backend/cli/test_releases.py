"""``training-backend releases add``: archives copied in, checksums recorded, bad ones refused."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from training_backend.cli import main
from training_backend.services.downloads import artifact_for, sha256_of

LINUX = "training-agent-0.2.0-linux-amd64.tar.gz"
WINDOWS = "training-agent-0.2.0-windows-arm64.zip"


def built(folder: Path, name: str, content: bytes, *, listed: bytes | None = None) -> Path:
    """An archive as packaging/build leaves it: with its line in the folder's SHA256SUMS."""
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(content)
    digest = hashlib.sha256(content if listed is None else listed).hexdigest()
    with (folder / "SHA256SUMS").open("a") as sums:
        sums.write(f"{digest}  {name}\n")
    return path


def test_add_copies_the_archives_and_records_them_for_the_download_endpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    releases = tmp_path / "releases"
    releases.mkdir()
    (releases / "SHA256SUMS").write_text(f"{'0' * 64}  training-agent-0.1.0-linux-amd64.tar.gz\n")
    linux = built(tmp_path / "dist", LINUX, b"linux build")
    windows = built(tmp_path / "dist", WINDOWS, b"windows build")

    code = main(["releases", "add", str(linux), str(windows), "--releases-dir", str(releases)])

    assert code == 0
    linux_sum = hashlib.sha256(b"linux build").hexdigest()
    windows_sum = hashlib.sha256(b"windows build").hexdigest()
    assert capsys.readouterr().out == f"{linux_sum}  {LINUX}\n{windows_sum}  {WINDOWS}\n"
    assert (releases / LINUX).read_bytes() == b"linux build"
    assert (releases / "SHA256SUMS").read_text().splitlines() == [
        f"{'0' * 64}  training-agent-0.1.0-linux-amd64.tar.gz",
        f"{linux_sum}  {LINUX}",
        f"{windows_sum}  {WINDOWS}",
    ]
    served = artifact_for(releases, version="0.2.0", platform="linux", arch="amd64")
    assert sha256_of(served) == linux_sum
    assert sorted(p.name for p in releases.iterdir()) == ["SHA256SUMS", LINUX, WINDOWS]


def test_adding_a_new_build_replaces_the_old_one_and_its_line(tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    for folder, content in (("a", b"one"), ("b", b"two")):
        archive = built(tmp_path / folder, LINUX, content)
        assert main(["releases", "add", str(archive), "--releases-dir", str(releases)]) == 0

    assert (releases / LINUX).read_bytes() == b"two"
    assert (
        releases / "SHA256SUMS"
    ).read_text() == f"{hashlib.sha256(b'two').hexdigest()}  {LINUX}\n"


def test_the_releases_dir_comes_from_the_environment_and_another_version_is_pointed_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRAINING_BACKEND_RELEASES_DIR", str(tmp_path / "served"))
    newer = built(tmp_path / "dist", "training-agent-0.3.0-darwin-arm64.tar.gz", b"mac")

    assert main(["releases", "add", str(newer)]) == 0

    assert (tmp_path / "served" / newer.name).exists()
    assert "set TRAINING_BACKEND_AGENT_VERSION" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "listed", "message"),
    [
        ("agent.tar.gz", None, "agent.tar.gz is not named like an agent release"),
        ("training-agent-0.2.0-windows-amd64.tar.gz", None, "is not named like an agent release"),
        ("training-agent-0.2.0-linux-amd64.zip", None, "is not named like an agent release"),
        (LINUX, b"what was published", "does not match its line in"),
    ],
)
def test_a_wrong_name_or_a_damaged_archive_is_refused_and_nothing_is_added(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    listed: bytes | None,
    message: str,
) -> None:
    good = built(tmp_path / "dist", WINDOWS, b"fine")
    bad = built(tmp_path / "dist", name, b"damaged", listed=listed)
    releases = tmp_path / "releases"

    code = main(["releases", "add", str(good), str(bad), "--releases-dir", str(releases)])

    assert code == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("training-backend: ")
    assert not releases.exists()


def test_a_missing_file_is_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["releases", "add", str(tmp_path / LINUX), "--releases-dir", str(tmp_path)])
    assert code == 1
    assert "is not a file: give a built archive" in capsys.readouterr().err


def test_add_copies_an_archives_signature_with_it(tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    linux = built(tmp_path / "dist", LINUX, b"linux build")
    linux.with_name(LINUX + ".sig").write_text("c2lnbmF0dXJl\n")

    assert main(["releases", "add", str(linux), "--releases-dir", str(releases)]) == 0

    assert (releases / (LINUX + ".sig")).read_text() == "c2lnbmF0dXJl\n"
