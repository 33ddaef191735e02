"""`semifer label`: labels are written as they are given (CSV + class folders that `semifer train` reads), survive
a restart, are not lost when two pages or two servers label one folder, and bad input is one clear error. The
browser test drives the real page in headless Chromium by keyboard."""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from semifer.data import load_dataset
from semifer.errors import DataError, SemiferError
from semifer.labeling.server import LabelServer
from semifer.labeling.store import LabelStore
from semifer.labels import BASIC7
from tiny_runs import semifer_process

FACES = 12


@pytest.fixture
def faces(tmp_path) -> Path:
    """Twelve small face images (one in a subfolder) and one file that does not decode."""
    folder = tmp_path / "to-label" / "faces"
    (folder / "more").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(FACES):
        target = folder / ("more" if i == 5 else "") / f"{i:04d}_face.png"
        Image.fromarray(rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(target)
    (folder / "broken.png").write_bytes(b"not an image")
    return folder


def rows(out: Path) -> dict[str, str]:
    with open(out / "labels.csv", newline="") as handle:
        return {row["face"]: row["label"] for row in csv.DictReader(handle)}


def tree(out: Path) -> dict[str, str]:
    return {p.name: p.parent.name for p in out.glob("*/*.png")}


def test_each_label_is_written_at_once_to_the_csv_and_the_class_folders(faces, tmp_path) -> None:
    out = tmp_path / "labeled"
    store = LabelStore(faces, out, BASIC7)
    assert len(store.faces) == FACES and store.unreadable == 1 and "more/0005_face.png" in store.faces
    store.set("0000_face.png", "happy")
    store.set("more/0005_face.png", "sad")
    assert rows(out) == {"0000_face.png": "happy", "more/0005_face.png": "sad"}
    assert tree(out) == {"0000_face.png": "happy", "more__0005_face.png": "sad"}
    store.set("0000_face.png", "anger")  # relabel: the copy moves
    store.set("more/0005_face.png", None)  # taken back: the copy goes
    assert rows(out) == {"0000_face.png": "anger"} and tree(out) == {"0000_face.png": "anger"}
    assert not list(out.glob(".*partial*")) and not list(out.glob("*/.*partial*"))

    for i in range(1, 8):
        store.set(f"{i:04d}_face.png" if i != 5 else "more/0005_face.png", BASIC7[i % 7])
    labeled = load_dataset(f"folder:{out}")  # the tree is a dataset `semifer train` / `semifer fit` take
    assert len(labeled) == 8 and sorted(labeled.class_counts().values()) == [1, 1, 1, 1, 1, 1, 2]


def test_a_restart_resumes_with_every_label_and_repairs_the_tree(faces, tmp_path) -> None:
    out = tmp_path / "labeled"
    LabelStore(faces, out, BASIC7).set("0001_face.png", "fear")
    (out / "fear" / "0001_face.png").unlink()  # as if stopped between the CSV and the copy
    again = LabelStore(faces, out, BASIC7)
    assert again.labels() == {"0001_face.png": "fear"} and tree(out) == {"0001_face.png": "fear"}


def test_two_stores_on_one_folder_lose_no_label(faces, tmp_path) -> None:
    """Two `semifer label` processes (or pages) on the same folder: each change re-reads under the lock."""
    out = tmp_path / "labeled"
    first, second = LabelStore(faces, out, BASIC7), LabelStore(faces, out, BASIC7)
    names = first.faces

    def give(store: LabelStore, part: list[str]) -> None:
        for name in part:
            store.set(name, "happy")

    threads = [threading.Thread(target=give, args=(s, names[k::2])) for k, s in enumerate((first, second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert rows(out) == dict.fromkeys(names, "happy") and len(tree(out)) == FACES


def test_bad_input_is_one_clear_error(faces, tmp_path) -> None:
    with pytest.raises(SemiferError, match="unknown expression class 'smirk'"):
        LabelStore(faces, tmp_path / "o", ["happy", "smirk"])
    with pytest.raises(SemiferError, match="inside the face folder"):
        LabelStore(faces, faces / "labeled", BASIC7)
    with pytest.raises(DataError, match="not a folder"):
        LabelStore(tmp_path / "missing", tmp_path / "o", BASIC7)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "x.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="no readable face image"):
        LabelStore(empty, tmp_path / "o", BASIC7)
    store = LabelStore(faces, tmp_path / "o", BASIC7)
    with pytest.raises(SemiferError, match="not one of the faces"):
        store.set("../secret.png", "happy")
    with pytest.raises(SemiferError, match="not one of the classes"):
        store.set("0000_face.png", "contempt")


@pytest.fixture
def server(faces, tmp_path):
    server = LabelServer(LabelStore(faces, tmp_path / "labeled", BASIC7), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def post(url: str, payload: object, content_type: str = "application/json", host: str | None = None) -> dict:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": content_type})
    if host:
        request.add_header("Host", host)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_the_server_serves_the_page_faces_and_labels_on_localhost_only(server) -> None:
    assert server.server_address[0] == "127.0.0.1"
    with urllib.request.urlopen(server.url, timeout=10) as response:
        assert b"semifer label" in response.read()
    with urllib.request.urlopen(server.url + "face/0", timeout=10) as response:
        assert response.headers["Content-Type"] == "image/png" and Image.open(response).size == (48, 48)
    state = json.loads(urllib.request.urlopen(server.url + "api/state", timeout=10).read())
    assert len(state["faces"]) == FACES and state["unreadable"] == 1 and state["classes"] == list(BASIC7)
    face = state["faces"][3]
    assert post(server.url + "api/label", {"face": face, "label": "surprise"})["labels"] == {face: "surprise"}
    for bad in (
        lambda: post(server.url + "api/label", {"face": face, "label": "happy"}, content_type="text/plain"),
        lambda: post(server.url + "api/label", {"face": face, "label": "happy"}, host="evil.example:80"),
        lambda: post(server.url + "api/label", {"face": "nope.png", "label": "happy"}),
    ):
        with pytest.raises(urllib.error.HTTPError):
            bad()
    assert rows(server.store.out) == {face: "surprise"}


def test_two_pages_posting_at_once_lose_no_label(server) -> None:
    names = server.store.faces
    threads = [
        threading.Thread(
            target=lambda part=part: [post(server.url + "api/label", {"face": n, "label": "sad"}) for n in part]
        )
        for part in (names[0::2], names[1::2])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert rows(server.store.out) == dict.fromkeys(names, "sad")


def test_a_port_in_use_is_one_clear_error(faces, tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(SemiferError, match=r"port \d+ on 127.0.0.1 is in use.*--port"):
            LabelServer(LabelStore(faces, tmp_path / "labeled", BASIC7), port=taken.getsockname()[1])


# ------------------------------------------------------------------------------------------ the page in Chromium
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser():
    """Headless Chromium (Debian's `chromium` + `chromium-driver`); CI requires it, elsewhere it may be absent."""
    required = os.environ.get("SEMIFER_BROWSER_TESTS") == "required"
    if not required:
        pytest.importorskip("selenium")
    if not (CHROMIUM and CHROMEDRIVER):
        if required:
            pytest.fail("SEMIFER_BROWSER_TESTS=required but chromium / chromedriver are not installed")
        pytest.skip("the browser test needs Debian's chromium and chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,800"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


def wait_for(condition, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting for the page")


def test_label_ten_faces_by_keys_undo_one_reload_and_nine_are_written(faces, tmp_path, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    out = tmp_path / "labeled"
    process = semifer_process("label", str(faces), "--out", str(out), "--port", "0")
    try:
        line = process.stdout.readline()
        assert "labeling 12 faces (1 unreadable files skipped) at http://127.0.0.1:" in line, process.stderr.read()
        url = line.split(" at ")[1].split()[0]
        browser.get(url)
        wait_for(lambda: browser.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
        progress = browser.find_element(By.ID, "progress-text")
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys("1234567123")  # ten faces, in grid order: the cursor moves to the next unlabeled face
        wait_for(lambda: progress.text.startswith("10 / 12 labeled"))
        body.send_keys(Keys.BACKSPACE)
        wait_for(lambda: progress.text.startswith("9 / 12 labeled"))

        browser.refresh()
        wait_for(lambda: browser.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
        progress = browser.find_element(By.ID, "progress-text")
        assert progress.text == "9 / 12 labeled (1 unreadable files skipped)"
        current = browser.find_element(By.CSS_SELECTOR, ".face.current").get_attribute("data-face")
        assert current not in rows(out)  # resumes at a face without a label
    finally:
        process.terminate()
        process.wait(timeout=30)
    written = rows(out)
    assert len(written) == 9 and len(tree(out)) == 9
    expected = [BASIC7[int(k) - 1] for k in "123456712"]
    assert sorted(written.values()) == sorted(expected)
    assert written["0000_face.png"] == "neutral" and written["0001_face.png"] == "happy"
