"""Fetching NIGHT from a local HTTP server: range-read data.csv, only the needed chunks, integrity, resume."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import struct
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from lipsim_bench.datasets import create_dataset
from lipsim_bench.datasets import night as nf
from lipsim_bench.errors import DatasetError
from tests.bench.datasets.http_fixture import ServerState, start_server

# (chunk, split, is_imagenet, votes) per triplet, id = position. Test triplets kept (votes >= 6): 2, 3, 6, 8.
ROWS = [
    ("000", "train", False, 6),
    ("000", "test", True, 4),
    ("000", "test", True, 7),
    ("001", "test", False, 6),
    ("001", "train", False, 6),
    ("001", "test", True, 5),
    ("002", "test", False, 6),
    ("002", "val", False, 6),
    ("002", "test", True, 9),
]
# Member prefixes vary on purpose: the fetcher must land every file at ROOT/kind/NNN/...
PREFIX = {("ref", "001"): "nights/ref/", ("distort", "002"): "distort/"}
DUMMY_BYTES = 6 << 20


def _images(rows: list[tuple[str, str, bool, int]]) -> dict[str, tuple[int, int, int]]:
    """Relative image path -> colour, three images per triplet."""
    out = {}
    for i, (chunk, *_rest) in enumerate(rows):
        out[f"ref/{chunk}/{i:03d}.png"] = (i * 20, 0, 0)
        out[f"distort/{chunk}/{i:03d}_0.png"] = (0, i * 20, 0)
        out[f"distort/{chunk}/{i:03d}_1.png"] = (0, 0, i * 20)
    return out


def _png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
    return buffer.getvalue()


def _csv() -> bytes:
    records = [
        {
            "id": i,
            "left_vote": round(1 - (i % 3) / 3, 4),
            "right_vote": round((i % 3) / 3, 4),
            "votes": votes,
            "ref_path": f"ref/{chunk}/{i:03d}.png",
            "left_path": f"distort/{chunk}/{i:03d}_0.png",
            "right_path": f"distort/{chunk}/{i:03d}_1.png",
            "split": split,
            "is_imagenet": is_imagenet,
        }
        for i, (chunk, split, is_imagenet, votes) in enumerate(ROWS)
    ]
    return pd.DataFrame(records).to_csv(index=False).encode()


def _build_site(site: Path) -> None:
    """nights.zip (data.csv + images + a big incompressible member) and the chunk archives."""
    images = {path: _png(color) for path, color in _images(ROWS).items()}
    with zipfile.ZipFile(site / "nights.zip", "w", zipfile.ZIP_DEFLATED) as full:
        full.writestr("nights/data.csv", _csv())
        for path, data in images.items():
            full.writestr(f"nights/{path}", data)
        full.writestr("nights/extra/data.csv", b"decoy: a longer path than the real data.csv\n")
        full.writestr(zipfile.ZipInfo("nights/dummy.bin"), os.urandom(DUMMY_BYTES), zipfile.ZIP_STORED)
    for kind in nf.KINDS:
        (site / "nights_chunked" / kind).mkdir(parents=True)
        for chunk in sorted({r[0] for r in ROWS}):
            prefix = PREFIX.get((kind, chunk), "")
            with zipfile.ZipFile(site / nf.archive_relpath(kind, chunk), "w", zipfile.ZIP_STORED) as archive:
                archive.writestr(zipfile.ZipInfo(f"{prefix}{chunk}/"), b"")  # a directory entry, skipped
                for path, data in images.items():
                    if path.startswith(f"{kind}/{chunk}/"):
                        archive.writestr(prefix + path.removeprefix(f"{kind}/"), data)


@pytest.fixture(scope="module")
def pristine_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("night_site")
    _build_site(site)
    return site


@pytest.fixture
def site(pristine_site: Path, tmp_path: Path) -> Path:
    """A per-test copy, so tests may corrupt or delete served files."""
    return Path(shutil.copytree(pristine_site, tmp_path / "site"))


@pytest.fixture
def server(site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerState]:
    httpd, state, base = start_server(site)
    monkeypatch.setenv(nf.NIGHT_BASE_URL_ENV, base)
    yield state
    httpd.shutdown()
    httpd.server_close()


def _archives_requested(state: ServerState) -> list[str]:
    return sorted({r.path.lstrip("/") for r in state.log if r.path.startswith("/nights_chunked/")})


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _flip_member_byte(archive: Path, member: str) -> None:
    """Corrupt one byte inside a stored member's data, so only its CRC-32 can notice."""
    raw = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(member)
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
    data_start = info.header_offset + 30 + name_len + extra_len
    raw[data_start + info.compress_size // 2] ^= 0xFF
    archive.write_bytes(bytes(raw))


def test_data_csv_comes_from_range_requests_not_the_whole_zip(server: ServerState, site: Path, tmp_path: Path) -> None:
    root = tmp_path / "nights"
    root.mkdir()
    nf.fetch_night_csv(root, nf.night_base_url(), {})
    assert (root / "data.csv").read_bytes() == _csv()  # the shortest data.csv path, not the decoy
    zip_size = (site / "nights.zip").stat().st_size
    served = server.requests_for("/nights.zip")
    assert served and all(r.range and r.status == 206 for r in served)
    assert server.bytes_for("/nights.zip") < zip_size / 4
    assert len(served) <= 6
    entry = json.loads((root / ".fetch" / "manifest.json").read_text())["files"]["data.csv"]
    assert entry["sha256"] == hashlib.sha256(_csv()).hexdigest() and entry["bytes"] == len(_csv())
    assert entry["url"].endswith("nights.zip#nights/data.csv")


def test_range_file_reads_like_a_local_file(server: ServerState, site: Path) -> None:
    local = (site / "nights.zip").read_bytes()
    remote = nf.HttpRangeFile(f"{nf.night_base_url()}/nights.zip", read_ahead=1000)
    assert remote.size == len(local)
    for offset, length in [(0, 10), (995, 20), (5000, 3500), (len(local) - 7, 50)]:
        remote.seek(offset)
        assert remote.read(length) == local[offset : offset + length]
        assert remote.tell() == min(offset + length, len(local))
    remote.seek(-3, os.SEEK_END)
    assert remote.read() == local[-3:]


def test_fetch_first_k_test_triplets_gets_only_their_chunks(server: ServerState, site: Path, tmp_path: Path) -> None:
    root = tmp_path / "nights"
    assert nf.fetch_night(root, "test", n=2, progress=True) == root
    assert _archives_requested(server) == sorted(nf.archive_relpath(k, c) for c in ("000", "001") for k in nf.KINDS)
    ds = create_dataset(f"night:{root}", "test").head(2)
    assert [r.id for r in ds.records] == ["2", "3"]
    ds.check_files()
    item = ds[1]
    assert item["ref"].shape == (3, 224, 224) and item["x1"].shape == (3, 224, 224)
    assert (root / "ref" / "001" / "003.png").is_file() and not (root / "ref" / "002").exists()
    assert not list((root / ".fetch").glob("*.part")), "downloaded archives must be deleted after extraction"
    files = json.loads((root / ".fetch" / "manifest.json").read_text())["files"]
    for kind in nf.KINDS:
        rel = nf.archive_relpath(kind, "001")
        assert files[rel]["sha256"] == _sha(site / rel) and files[rel]["bytes"] == (site / rel).stat().st_size
    assert nf.night_is_complete(root, "test", 2) and not nf.night_is_complete(root, "test", None)


def test_rerun_downloads_nothing_and_an_unmarked_chunk_is_refetched(server: ServerState, tmp_path: Path) -> None:
    root = tmp_path / "nights"
    nf.fetch_night(root, "test", n=2, progress=False)
    server.log.clear()
    nf.fetch_night(root, "test", n=2, progress=False)
    assert server.log == []
    (root / ".fetch" / "done" / "ref-001").unlink()  # as if killed while extracting ref/001
    (root / "ref" / "001" / "003.png").unlink()
    nf.fetch_night(root, "test", n=2, progress=False)
    assert [r.path for r in server.log] == ["/nights_chunked/ref/001.zip"]
    assert (root / "ref" / "001" / "003.png").is_file() and (root / ".fetch" / "done" / "ref-001").is_file()


def test_corrupt_archive_is_rejected_and_left_unmarked(server: ServerState, site: Path, tmp_path: Path) -> None:
    _flip_member_byte(site / "nights_chunked/distort/001.zip", "001/003_1.png")
    root = tmp_path / "nights"
    with pytest.raises(DatasetError, match=r"nights_chunked/distort/001\.zip is corrupt .*CRC"):
        nf.fetch_night(root, "test", n=2, progress=False)
    done = sorted(p.name for p in (root / ".fetch" / "done").iterdir())
    assert done == ["distort-000", "ref-000", "ref-001"]
    assert not (root / "distort" / "001" / "003_1.png").exists()
    assert not list(root.rglob("*.tmp")) and not list((root / ".fetch").glob("*.part"))
    assert nf.plan_night_fetch(root, "test", 2).missing_chunks == ["001"]


@pytest.mark.parametrize("path", ["/nights_chunked/ref/000.zip", "/nights.zip"])
def test_truncated_response_is_an_error(server: ServerState, tmp_path: Path, path: str) -> None:
    server.truncate.add(path)
    root = tmp_path / "nights"
    with pytest.raises(DatasetError, match="cut off"):
        nf.fetch_night(root, "test", n=1, progress=False)
    assert not (root / ".fetch" / "done" / "ref-000").exists()
    assert (root / "data.csv").exists() == (path != "/nights.zip")


def test_pinned_sha256_is_checked(
    server: ServerState, site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rel = nf.archive_relpath("ref", "000")
    good = _sha(site / rel)
    monkeypatch.setitem(nf.PINNED_SHA256, rel, "0" * 64)
    root = tmp_path / "nights"
    with pytest.raises(DatasetError, match=f"sha256 mismatch for {rel}: pinned 0{{64}}, downloaded {good}") as err:
        nf.fetch_night(root, "test", n=1, progress=False)
    assert "run the fetch again" in str(err.value)
    assert not (root / ".fetch" / "done" / "ref-000").exists() and not (root / "ref" / "000").exists()
    pins = tmp_path / "pins.json"
    pins.write_text(json.dumps({rel: good.upper()}))  # a pins file overrides the built-in table
    nf.fetch_night(root, "test", n=1, pins=pins, progress=False)
    assert (root / ".fetch" / "done" / "ref-000").is_file()
    # the manifest of one fetch pins the next one
    nf.fetch_night(tmp_path / "again", "test", n=1, pins=root / ".fetch" / "manifest.json", progress=False)


def test_bad_pins_file_is_named(server: ServerState, tmp_path: Path) -> None:
    pins = tmp_path / "pins.json"
    pins.write_text(json.dumps({"data.csv": "abc"}))
    with pytest.raises(DatasetError, match="pins file .*pins.json: 'data.csv' maps to 'abc'"):
        nf.fetch_night(tmp_path / "nights", "test", n=1, pins=pins, progress=False)


def test_server_without_range_support(server: ServerState, tmp_path: Path) -> None:
    server.no_range = True
    with pytest.raises(DatasetError, match=r"ignores HTTP Range requests \(answered 200, not 206\)"):
        nf.fetch_night(tmp_path / "nights", "test", n=1, progress=False)


def test_unreachable_server_gives_one_line_with_the_offline_recipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(nf.NIGHT_BASE_URL_ENV, "http://127.0.0.1:1/")
    root = tmp_path / "nights"
    with pytest.raises(DatasetError) as err:
        nf.fetch_night(root, "test", n=3, progress=False)
    message = str(err.value)
    assert message.startswith("could not download http://127.0.0.1:1/nights.zip (")
    assert f"run `python run_bench.py fetch night --split test --n 3 --root {root}`" in message
    assert message.endswith(f"copy {root} here and pass --dataset night:{root}")
    assert "\n" not in message and err.value.__cause__ is None and err.value.__suppress_context__


def test_missing_archive_on_server_is_a_network_error(server: ServerState, site: Path, tmp_path: Path) -> None:
    (site / "nights_chunked/distort/000.zip").unlink()
    with pytest.raises(DatasetError, match=r"could not download http://.*/nights_chunked/distort/000\.zip \(HTTP 404"):
        nf.fetch_night(tmp_path / "nights", "test", progress=False)


def test_plan_is_offline_and_lists_exactly_the_missing_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("plan_night_fetch must not touch the network")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setenv(nf.NIGHT_BASE_URL_ENV, "https://mirror.example/nights")
    root = tmp_path / "nights"
    plan = nf.plan_night_fetch(root, "test", 2)
    assert not plan.have_csv and plan.chunks is None and plan.missing_chunks is None and plan.n_triplets is None
    text = "\n".join(plan.describe())
    assert "must be fetched first" in text and "https://mirror.example/nights/nights.zip" in text
    assert not nf.night_is_complete(root, "test", 2)

    root.mkdir()
    (root / "data.csv").write_bytes(_csv())
    for marker in ("ref-000", "distort-000", "ref-001"):  # 001 is half done
        (root / ".fetch" / "done").mkdir(parents=True, exist_ok=True)
        (root / ".fetch" / "done" / marker).write_text("x\n")
    plan = nf.plan_night_fetch(root, "test")
    assert (plan.chunks, plan.missing_chunks, plan.n_triplets) == (["000", "001", "002"], ["001", "002"], 4)
    text = "\n".join(plan.describe())
    for rel in ("ref/001.zip", "distort/001.zip", "ref/002.zip", "distort/002.zip"):
        assert f"https://mirror.example/nights/nights_chunked/{rel}" in text
    assert "nights_chunked/ref/000.zip" not in text and "1.16 GB" in text
    assert nf.plan_night_fetch(root, "test", 1).missing_chunks == []
    assert nf.plan_night_fetch(root, "train").chunks == ["000", "001"]
    with pytest.raises(DatasetError, match="unknown split 'tset'"):
        nf.plan_night_fetch(root, "tset")
    with pytest.raises(DatasetError, match="positive number"):
        nf.plan_night_fetch(root, "test", 0)


def test_default_root_and_base_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(nf.NIGHT_BASE_URL_ENV, raising=False)
    monkeypatch.delenv("LIPSIM_BENCH_DATA", raising=False)
    assert nf.night_base_url() == "https://data.csail.mit.edu/nights"
    assert nf.default_night_root() == Path.home() / ".cache" / "lipsim_bench" / "nights"
    monkeypatch.setenv("LIPSIM_BENCH_DATA", str(tmp_path))
    assert nf.default_night_root() == tmp_path / "nights"
    monkeypatch.setenv(nf.NIGHT_BASE_URL_ENV, "ftp://x")
    with pytest.raises(DatasetError, match="not an http"):
        nf.night_base_url()


def test_paper_preset_fetches_what_n_needs_then_runs(
    server: ServerState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The preset end to end with 'network': NIGHT's cache is filled with just the chunks of the first 2 test triplets."""
    from lipsim_bench.cli import main

    monkeypatch.setenv(nf.DATA_DIR_ENV, str(tmp_path / "data"))
    out = tmp_path / "run"
    assert main(["--preset", "paper", "--metrics", "pixel-l2", "--n", "2", "--steps", "2", "--out", str(out)]) == 0
    assert _archives_requested(server) == [
        f"nights_chunked/{kind}/{chunk}.zip" for kind in ("distort", "ref") for chunk in ("000", "001")
    ]
    scores = pd.read_csv(out / "scores.csv")
    headline = scores[scores["split"] == "test"]
    assert set(headline["n"]) == {2} and sorted(headline.loc[headline["evaluation"] == "apgd", "eps"]) == [
        0.5,
        1.0,
        2.0,
        3.0,
    ]
    assert sorted(headline.loc[headline["evaluation"] == "certified", "eps"]) == pytest.approx(
        [36 / 255, 72 / 255, 108 / 255]
    )
    served = len(server.log)
    assert main(["--preset", "paper", "--metrics", "pixel-l2", "--n", "2", "--steps", "2", "--out", str(out)]) == 0
    assert len(server.log) == served  # all there: the rerun downloads nothing and recomputes nothing
    assert "computed:" not in (out / "run.log").read_text().split("start:")[-1]
    capsys.readouterr()
