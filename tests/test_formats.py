"""Each dataset format parsed from its real on-disk layout into the canonical label space."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fixture_layouts import (
    fer_pixels,
    make_affectnet_original,
    make_affectnet_sets,
    make_ckplus,
    make_class_tree,
    make_ferplus,
    make_rafdb,
    write_fer2013,
    write_ferplus_votes,
    write_image,
)
from semifer.data.affectnet import load_affectnet
from semifer.data.ckplus import load_ckplus
from semifer.data.fer2013 import ferplus_majority, load_fer2013, load_ferplus
from semifer.data.folders import load_class_folders, load_image_list, load_sfew, load_unlabeled_folder
from semifer.data.rafdb import load_rafdb
from semifer.data.registry import load_dataset
from semifer.errors import DataError
from semifer.labels import CANONICAL


def idx(name: str) -> int:
    return CANONICAL.index(name)


# --- FER2013 ----------------------------------------------------------------------------------------------

FER_ROWS = [(0, "Training"), (3, "Training"), (6, "PublicTest"), (2, "PrivateTest"), (1, "Training")]


@pytest.fixture
def fer_csv(tmp_path: Path) -> Path:
    return write_fer2013(tmp_path / "fer2013.csv", FER_ROWS)


@pytest.mark.parametrize("name", ["fer2013.csv", "fer2013.csv.gz"])
def test_fer2013_parses_labels_by_name_pixels_and_ids(tmp_path: Path, name: str) -> None:
    faces = load_fer2013(write_fer2013(tmp_path / name, FER_ROWS))
    assert faces.labels.tolist() == [idx("anger"), idx("happy"), idx("neutral"), idx("fear"), idx("disgust")]
    assert faces.num_classes == 7 and faces.dropped == {}
    assert faces.ids == ["Training/0", "Training/1", "PublicTest/2", "PrivateTest/3", "Training/4"]
    assert faces.pixels is not None and faces.pixels.shape == (5, 48, 48) and faces.pixels.dtype == np.uint8
    assert faces.pixels[2].ravel().tolist() == [int(v) for v in fer_pixels(2).split()]
    assert faces.source == str(tmp_path / name)
    image = faces.load(1)
    assert image.shape == (3, 48, 48) and image.dtype == torch.uint8
    assert image[0, 0, :3].tolist() == [1, 2, 3]


@pytest.mark.parametrize(
    ("split", "ids"),
    [
        ("Training", ["Training/0", "Training/1", "Training/4"]),
        ("train", ["Training/0", "Training/1", "Training/4"]),
        ("VAL", ["PublicTest/2"]),
        ("publictest", ["PublicTest/2"]),
        ("test", ["PrivateTest/3"]),
    ],
)
def test_fer2013_split_selection_keeps_row_ids(fer_csv: Path, split: str, ids: list[str]) -> None:
    assert load_fer2013(fer_csv, split=split).ids == ids


def test_fer2013_tolerates_irregular_spacing_and_crlf(tmp_path: Path) -> None:
    messy = " " + fer_pixels(0).replace(" ", "  ", 5) + " "
    path = write_fer2013(tmp_path / "fer.csv", [(4, "Training")], pixels={0: messy})
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    faces = load_fer2013(path)
    assert faces.labels.tolist() == [idx("sad")]
    assert faces.pixels[0].ravel().tolist() == [int(v) for v in fer_pixels(0).split()]


@pytest.mark.parametrize(
    ("pixels", "message"),
    [
        (" ".join(["7"] * 2303), "2303 values"),
        (fer_pixels(1).replace("5", "5x", 1), "'5x'"),
        (fer_pixels(1).replace("7", "256", 1), "'256'"),
        (fer_pixels(1).replace("7", "-7", 1), "'-7'"),
    ],
)
def test_fer2013_bad_pixel_row_names_file_and_line(tmp_path: Path, pixels: str, message: str) -> None:
    path = write_fer2013(tmp_path / "fer.csv", [(0, "Training"), (1, "Training")], pixels={1: pixels})
    with pytest.raises(DataError, match=message) as info:
        load_fer2013(path)
    assert info.value.path == str(path) and info.value.line == 3 and info.value.fix
    assert f"{path}, line 3" in str(info.value)


def test_fer2013_bad_emotion_usage_and_header(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="emotion '7'") as info:
        load_fer2013(write_fer2013(tmp_path / "a.csv", [(0, "Training"), (7, "Training")]))
    assert info.value.line == 3
    with pytest.raises(DataError, match="Usage 'Dev'") as info:
        load_fer2013(write_fer2013(tmp_path / "b.csv", [(0, "Dev")]))
    assert info.value.line == 2
    bad_header = tmp_path / "c.csv"
    bad_header.write_text("emotion,pixels\n0,1 2 3\n")
    with pytest.raises(DataError, match="missing column 'usage'") as info:
        load_fer2013(bad_header)
    assert info.value.line == 1


def test_fer2013_missing_file_empty_split_and_unknown_split(tmp_path: Path, fer_csv: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_fer2013(tmp_path / "nope.csv")
    only_train = write_fer2013(tmp_path / "train_only.csv", [(0, "Training")])
    with pytest.raises(DataError, match="holds no images"):
        load_fer2013(only_train, split="PrivateTest")
    with pytest.raises(DataError, match="unknown split 'dev'"):
        load_fer2013(fer_csv, split="dev")
    corrupt_gz = tmp_path / "fer2013.csv.gz"
    corrupt_gz.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot read the file"):
        load_fer2013(corrupt_gz)


# --- FER+ -------------------------------------------------------------------------------------------------

# votes: neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
FERPLUS_ROWS = [
    ("Training", "fer0000000.png", [6, 0, 1, 1, 0, 0, 0, 0, 2, 0]),  # neutral: 6 of 8 once single votes go
    ("Training", "fer0000001.png", [4, 0, 0, 1, 3, 2, 0, 0, 0, 0]),  # 4 of 9: no strict majority
    ("Training", "fer0000002.png", [0, 0, 0, 0, 0, 0, 0, 7, 3, 0]),  # contempt
    ("Training", "fer0000003.png", [0, 0, 0, 0, 0, 0, 0, 0, 8, 2]),  # unknown
    ("Training", "fer0000004.png", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]),  # not a face
    ("Training", "", [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),  # no FER+ record
    ("PublicTest", "fer0000006.png", [0, 5, 0, 0, 2, 0, 1, 0, 2, 0]),  # happy: 5 of 9
    ("Training", "fer0000007.png", [1] * 10),  # every vote an outlier
]


@pytest.fixture
def ferplus_dir(tmp_path: Path) -> Path:
    return make_ferplus(tmp_path / "fer2013", FERPLUS_ROWS)


def test_ferplus_majority_rule() -> None:
    votes = np.array([v for _, _, v in FERPLUS_ROWS])
    assert ferplus_majority(votes).tolist() == [0, -1, 7, 8, 9, -1, 1, -1]


def test_ferplus_labels_soft_labels_and_dropped(ferplus_dir: Path) -> None:
    faces = load_ferplus(ferplus_dir)
    assert faces.num_classes == 8
    assert faces.ids == ["Training/0", "Training/2", "PublicTest/6"]
    assert faces.labels.tolist() == [idx("neutral"), idx("contempt"), idx("happy")]
    assert faces.dropped == {"no_majority": 2, "unknown": 1, "not_face": 1, "no_record": 1}
    assert len(faces) + sum(faces.dropped.values()) == len(FERPLUS_ROWS)
    soft = faces.soft_labels
    assert soft is not None and soft.shape == (3, 8)
    expected = np.zeros(8)
    expected[[idx("neutral"), idx("surprise"), idx("sad")]] = [6 / 8, 1 / 8, 1 / 8]
    np.testing.assert_allclose(soft[0], expected, rtol=1e-6)
    expected = np.zeros(8)
    expected[[idx("happy"), idx("anger"), idx("fear")]] = [5 / 8, 2 / 8, 1 / 8]
    np.testing.assert_allclose(soft[2], expected, rtol=1e-6)
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-6)
    assert faces.load(0).shape == (3, 48, 48)


def test_ferplus_seven_classes_drops_contempt_and_splits(ferplus_dir: Path) -> None:
    faces = load_ferplus(ferplus_dir, classes=7)
    assert faces.labels.tolist() == [idx("neutral"), idx("happy")]
    assert faces.dropped["contempt"] == 1 and faces.soft_labels.shape == (2, 7)
    val = load_ferplus(ferplus_dir, split="val")
    assert val.ids == ["PublicTest/6"] and val.dropped == {}
    train = load_ferplus(ferplus_dir, split="Training")
    assert len(train) + sum(train.dropped.values()) == 7


def test_fer2013_with_ferplus_votes_delegates(ferplus_dir: Path) -> None:
    csv = ferplus_dir / "fer2013.csv.gz"
    by_flag = load_fer2013(csv, ferplus=True)
    by_path = load_fer2013(csv, ferplus=str(ferplus_dir / "fer2013new.csv"))
    assert by_flag.ids == by_path.ids == load_ferplus(ferplus_dir).ids


def test_ferplus_misaligned_files_name_both(ferplus_dir: Path) -> None:
    write_ferplus_votes(ferplus_dir / "fer2013new.csv", FERPLUS_ROWS[:-1])
    with pytest.raises(DataError, match="7 vote rows") as info:
        load_ferplus(ferplus_dir)
    assert "fer2013new.csv" in info.value.path and "fer2013.csv.gz" in str(info.value)
    swapped = [("PublicTest", *FERPLUS_ROWS[0][1:]), *FERPLUS_ROWS[1:]]
    write_ferplus_votes(ferplus_dir / "fer2013new.csv", swapped)
    with pytest.raises(DataError, match="not line-aligned") as info:
        load_ferplus(ferplus_dir)
    assert info.value.line == 2


def test_ferplus_missing_files(tmp_path: Path, ferplus_dir: Path) -> None:
    with pytest.raises(DataError, match="no fer2013.csv"):
        load_ferplus(tmp_path)
    (ferplus_dir / "fer2013new.csv").unlink()
    with pytest.raises(DataError, match="FER\\+ votes file not found"):
        load_ferplus(ferplus_dir)


# --- RAF-DB -----------------------------------------------------------------------------------------------

RAF_ENTRIES = [("train_00001.jpg", 1), ("train_00002.jpg", 4), ("test_0001.jpg", 7), ("test_0002.jpg", 6)]


def test_rafdb_labels_by_name_splits_and_images(tmp_path: Path) -> None:
    root = make_rafdb(tmp_path / "basic", RAF_ENTRIES)
    faces = load_rafdb(root)
    assert faces.labels.tolist() == [idx("surprise"), idx("happy"), idx("neutral"), idx("anger")]
    assert faces.ids == [name for name, _ in RAF_ENTRIES] and faces.num_classes == 7
    assert faces.paths[0] == root / "Image" / "aligned" / "train_00001_aligned.jpg"
    assert faces.load(0).shape == (3, 16, 16) and faces.load(0).dtype == torch.uint8
    assert load_rafdb(root, split="train").ids == ["train_00001.jpg", "train_00002.jpg"]
    original = load_rafdb(root, split="TEST", images="original")
    assert original.ids == ["test_0001.jpg", "test_0002.jpg"] and original.load(1).shape == (3, 20, 24)


def test_rafdb_errors(tmp_path: Path) -> None:
    root = make_rafdb(tmp_path / "basic", RAF_ENTRIES)
    missing = root / "Image" / "aligned" / "test_0002_aligned.jpg"
    missing.unlink()
    with pytest.raises(DataError, match="not found") as info:
        load_rafdb(root)
    assert info.value.path == str(missing)
    labels = root / "EmoLabel" / "list_patition_label.txt"
    labels.write_text("train_00001.jpg 1\ntrain_00002.jpg 8\n")
    with pytest.raises(DataError, match="label 1..7") as info:
        load_rafdb(root)
    assert info.value.line == 2
    with pytest.raises(DataError, match="unknown split"):
        load_rafdb(root, split="val")
    with pytest.raises(DataError, match="RAF-DB label list not found"):
        load_rafdb(tmp_path)


# --- AffectNet --------------------------------------------------------------------------------------------

AFFECT_TRAIN = [
    ("1/a.jpg", 0),
    ("1/b.jpg", 1),
    ("2/c.jpg", 7),
    ("2/d.jpg", 8),
    ("3/e.jpg", 9),
    ("3/f.jpg", 10),
    ("3/g.png", 6),
]
AFFECT_VAL = [("9/v.jpg", 3), ("9/w.jpg", 2)]


@pytest.mark.parametrize("nested", [True, False])
def test_affectnet_original_layout(tmp_path: Path, nested: bool) -> None:
    root = make_affectnet_original(tmp_path / "AffectNet", AFFECT_TRAIN, AFFECT_VAL, nested=nested)
    faces = load_affectnet(root)
    assert faces.ids == ["1/a.jpg", "1/b.jpg", "3/g.png"]
    assert faces.labels.tolist() == [idx("neutral"), idx("happy"), idx("anger")]
    assert faces.dropped == {"contempt": 1, "none": 1, "uncertain": 1, "no_face": 1}
    assert faces.load(2).shape == (3, 10, 12)
    eight = load_affectnet(root, classes=8)
    assert eight.num_classes == 8 and eight.labels.tolist()[2] == idx("contempt")
    assert eight.dropped == {"none": 1, "uncertain": 1, "no_face": 1}
    val = load_affectnet(root, split="validation")
    assert val.ids == ["9/v.jpg", "9/w.jpg"] and val.labels.tolist() == [idx("surprise"), idx("sad")]
    assert len(load_affectnet(root, split=None)) == 5


def test_affectnet_original_errors(tmp_path: Path) -> None:
    root = make_affectnet_original(tmp_path / "AffectNet", AFFECT_TRAIN, AFFECT_VAL)
    (root / "Manually_Annotated_Images" / "1" / "b.jpg").unlink()
    with pytest.raises(DataError, match="listed image not found") as info:
        load_affectnet(root)
    assert info.value.path.endswith("b.jpg")
    (root / "Manually_Annotated_file_lists" / "validation.csv").write_text("9/v.jpg,1,1,1,1,,11,0,0\n")
    with pytest.raises(DataError, match="'11' is not a code") as info:
        load_affectnet(root, split="val")
    assert info.value.line == 1
    with pytest.raises(DataError, match="classes must be 7 or 8"):
        load_affectnet(root, classes=6)


def test_affectnet_per_image_layout(tmp_path: Path) -> None:
    root = make_affectnet_sets(tmp_path / "AffectNet", {"train_set": [0, 7, 4] + [5] * 9, "val_set": [5]})
    faces = load_affectnet(root, split="train")
    assert faces.ids[:3] == ["train_set/0.jpg", "train_set/2.jpg", "train_set/3.jpg"]
    assert faces.ids[-1] == "train_set/11.jpg"
    assert faces.labels.tolist()[:3] == [idx("neutral"), idx("fear"), idx("disgust")]
    assert faces.dropped == {"contempt": 1}
    assert load_affectnet(root, classes=8).labels.tolist()[1] == idx("contempt")
    val = load_affectnet(root, split="val")
    assert val.ids == ["val_set/0.jpg"] and val.load(0).shape == (3, 10, 12)
    (root / "val_set" / "annotations" / "0_exp.npy").unlink()
    with pytest.raises(DataError, match="expression annotation of 0.jpg not found"):
        load_affectnet(root, split="val")


# --- CK+ --------------------------------------------------------------------------------------------------

CK_SEQUENCES = [("S005", "001", 5, 3), ("S010", "002", 4, 2), ("S011", "001", 3, None)]


def test_ckplus_last_frames_and_contempt(tmp_path: Path) -> None:
    root = make_ckplus(tmp_path / "CK+", CK_SEQUENCES)
    faces = load_ckplus(root)
    assert faces.ids == [f"S005/001/S005_001_{k:08d}.png" for k in (3, 4, 5)]
    assert faces.labels.tolist() == [idx("disgust")] * 3
    assert faces.dropped == {"contempt": 3} and faces.num_classes == 7
    assert faces.load(0).shape == (3, 10, 12)
    eight = load_ckplus(root, last_frames=1, first_as_neutral=True, classes=8)
    assert eight.ids == [
        "S005/001/S005_001_00000001.png",
        "S005/001/S005_001_00000005.png",
        "S010/002/S010_002_00000001.png",
        "S010/002/S010_002_00000004.png",
    ]
    assert eight.labels.tolist() == [idx("neutral"), idx("disgust"), idx("neutral"), idx("contempt")]
    assert eight.dropped == {}


def test_ckplus_errors(tmp_path: Path) -> None:
    root = make_ckplus(tmp_path / "CK+", CK_SEQUENCES)
    (root / "Emotion" / "S005" / "001" / "S005_001_00000005_emotion.txt").write_text("9.5\n")
    with pytest.raises(DataError, match="'9.5' is not a code") as info:
        load_ckplus(root)
    assert info.value.line == 1
    (root / "Emotion" / "S005" / "001" / "S005_001_00000005_emotion.txt").write_text("3\n")
    for frame in (root / "cohn-kanade-images" / "S010" / "002").iterdir():
        frame.unlink()
    with pytest.raises(DataError, match="no frames"):
        load_ckplus(root)


def test_ckplus48_class_folders(tmp_path: Path) -> None:
    root = make_class_tree(tmp_path / "CK+48", {"anger": 2, "contempt": 1, "sadness": 1})
    faces = load_ckplus(root)
    assert faces.name == "ckplus" and faces.num_classes == 7 and faces.dropped == {"contempt": 1}
    assert faces.labels.tolist() == [idx("anger"), idx("anger"), idx("sad")]
    assert load_ckplus(root, classes=8).labels.tolist()[2] == idx("contempt")


# --- class folders, SFEW, unlabeled pools -----------------------------------------------------------------


def test_class_folders_map_names_and_choose_classes(tmp_path: Path) -> None:
    root = make_class_tree(tmp_path / "tree", {"Angry": 2, "happiness": 1, "contempt": 1})
    write_image(root / "happiness" / "nested" / "x.JPG")
    (root / "happiness" / "notes.txt").write_text("not an image")
    faces = load_class_folders(root)
    assert faces.num_classes == 8
    assert faces.ids == [
        "Angry/000.png",
        "Angry/001.png",
        "contempt/000.png",
        "happiness/000.png",
        "happiness/nested/x.JPG",
    ]
    assert faces.labels.tolist() == [idx("anger")] * 2 + [idx("contempt")] + [idx("happy")] * 2
    seven = load_class_folders(root, classes=7)
    assert seven.num_classes == 7 and seven.dropped == {"contempt": 1} and len(seven) == 4


def test_class_folders_unknown_folder(tmp_path: Path) -> None:
    root = make_class_tree(tmp_path / "tree", {"sad": 1, "other": 2})
    with pytest.raises(DataError, match="'other' names no expression class") as info:
        load_class_folders(root)
    assert info.value.path == str(root / "other") and "ignore_unknown" in info.value.fix
    assert "neutral" in info.value.fix
    faces = load_class_folders(root, ignore_unknown=True)
    assert faces.num_classes == 7 and faces.dropped == {"other": 2} and faces.labels.tolist() == [idx("sad")]


def test_class_folders_split_and_empty(tmp_path: Path) -> None:
    make_class_tree(tmp_path / "data" / "train", {"fear": 1})
    (tmp_path / "data" / "test" / "fear").mkdir(parents=True)
    assert load_class_folders(tmp_path / "data", split="TRAIN").labels.tolist() == [idx("fear")]
    with pytest.raises(DataError, match="holds no images"):
        load_class_folders(tmp_path / "data", split="test")
    with pytest.raises(DataError, match="split folder not found"):
        load_class_folders(tmp_path / "data", split="val")


def test_unreadable_image_is_named(tmp_path: Path) -> None:
    root = make_class_tree(tmp_path / "tree", {"neutral": 1})
    bad = root / "neutral" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 definitely not a jpeg")
    faces = load_class_folders(root)
    assert faces.load(0).shape == (3, 10, 12)
    with pytest.raises(DataError, match="cannot read image") as info:
        faces.load(faces.ids.index("neutral/broken.jpg"))
    assert info.value.path == str(bad)


def test_sfew_splits(tmp_path: Path) -> None:
    make_class_tree(tmp_path / "SFEW_2.0" / "Train", {"Angry": 1, "Surprise": 2})
    make_class_tree(tmp_path / "SFEW_2.0" / "Val", {"Happy": 1})
    train = load_sfew(tmp_path / "SFEW_2.0", split="train")
    assert train.labels.tolist() == [idx("anger"), idx("surprise"), idx("surprise")]
    assert train.name == "sfew-train"
    assert load_sfew(tmp_path / "SFEW_2.0", split="VAL").labels.tolist() == [idx("happy")]
    with pytest.raises(DataError, match="unknown split"):
        load_sfew(tmp_path / "SFEW_2.0", split="test")


def test_unlabeled_folder(tmp_path: Path) -> None:
    for rel in ("b/2.png", "a/1.jpg", "a/z/3.webp", "c.bmp"):
        write_image(tmp_path / "pool" / rel)
    (tmp_path / "pool" / "readme.md").write_text("-")
    pool = load_unlabeled_folder(tmp_path / "pool")
    assert pool.ids == ["a/1.jpg", "a/z/3.webp", "b/2.png", "c.bmp"]
    assert pool.labels.tolist() == [-1] * 4 and pool.num_classes == 7 and not pool.is_labeled
    assert load_unlabeled_folder(tmp_path / "pool", max_images=2).ids == ["a/1.jpg", "a/z/3.webp"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        load_unlabeled_folder(tmp_path / "empty")


def test_image_list_csv_and_text(tmp_path: Path) -> None:
    for rel in ("a/1.png", "b/2.jpg", "elsewhere/3.png"):
        write_image(tmp_path / rel)
    lists = tmp_path / "lists"
    lists.mkdir()
    outside = (tmp_path / "elsewhere" / "3.png").resolve()
    (lists / "faces.csv").write_text(f"path,label\n../a/1.png,happy\n../b/2.jpg,\n{outside},Anger\n")
    faces = load_image_list(lists / "faces.csv")
    assert faces.ids == ["../a/1.png", "../b/2.jpg", str(outside)]
    assert faces.labels.tolist() == [idx("happy"), -1, idx("anger")]
    assert faces.load(0).shape[0] in (1, 3)
    (lists / "faces.txt").write_text("../a/1.png\n\n../b/2.jpg\n")
    assert load_dataset(f"list:{lists / 'faces.txt'}").labels.tolist() == [-1, -1]
    (lists / "missing.csv").write_text("file\n../a/1.png\n../a/nope.png\n")
    with pytest.raises(DataError, match="1 of the 2 listed images do not exist") as err:
        load_image_list(lists / "missing.csv")
    assert "nope.png" in str(err.value) and "missing.csv" in str(err.value)
    (lists / "bad.csv").write_text("path,label\n../a/1.png,grumpy\n")
    with pytest.raises(DataError, match="row 2: 'grumpy' names no expression class"):
        load_image_list(lists / "bad.csv")
    (lists / "empty.csv").write_text("\n")
    with pytest.raises(DataError, match="empty"):
        load_image_list(lists / "empty.csv")


# --- registry specs ---------------------------------------------------------------------------------------


def test_registry_loads_every_format(tmp_path: Path, ferplus_dir: Path) -> None:
    fer = write_fer2013(tmp_path / "fer.csv", FER_ROWS)
    raf = make_rafdb(tmp_path / "raf", RAF_ENTRIES)
    affect = make_affectnet_original(tmp_path / "affect", AFFECT_TRAIN, AFFECT_VAL)
    ck = make_ckplus(tmp_path / "ck", CK_SEQUENCES)
    tree = make_class_tree(tmp_path / "tree", {"happy": 1, "contempt": 1})
    make_class_tree(tmp_path / "sfew" / "Val", {"Sad": 2})
    expected = {
        f"fer2013:{fer}?split=train": 3,
        f"ferplus:{ferplus_dir}?split=Training&classes=7": 1,
        f"fer2013:{ferplus_dir / 'fer2013.csv.gz'}?ferplus=true": 3,
        f"rafdb:{raf}?split=test&images=original": 2,
        f"affectnet:{affect}?split=validation&classes=8": 2,
        f"ckplus:{ck}?last_frames=2&first_as_neutral=true&classes=8": 6,
        f"folder:{tree}?classes=7": 1,
        f"sfew:{tmp_path / 'sfew'}?split=val": 2,
        f"unlabeled:{tree}?max_images=1": 1,
    }
    for spec, size in expected.items():
        assert len(load_dataset(spec)) == size, spec
    with pytest.raises(DataError, match="bad option"):
        load_dataset(f"rafdb:{raf}?colour=blue")


# --- the real FER2013 / FER+ files ------------------------------------------------------------------------


def test_real_fer2013_and_ferplus(real_data: str) -> None:
    """Skipped unless SEMIFER_DATA names the shared data folder (conftest's `real_data` fixture)."""
    folder = Path(real_data) / "fer2013"
    names = ["anger", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    train = load_fer2013(folder / "fer2013.csv.gz", split="Training")
    assert len(train) == 28540
    assert [train.class_counts()[n] for n in names] == [3962, 435, 4075, 7186, 4793, 3157, 4932]
    public = load_fer2013(folder / "fer2013.csv.gz", split="PublicTest")
    assert len(public) == 3589
    assert [public.class_counts()[n] for n in names] == [467, 56, 496, 895, 653, 415, 607]
    plus = load_ferplus(folder, split="Training")
    assert len(plus) + sum(plus.dropped.values()) == 28540
    assert len(plus) > 0.8 * 28540 and plus.num_classes == 8
    counts = plus.class_counts()
    assert max(counts, key=counts.get) == "neutral" and min(counts.values()) > 50
    assert set(plus.ids) <= set(train.ids)
    row = train.ids.index(plus.ids[0])
    assert np.array_equal(plus.pixels[0], train.pixels[row])
