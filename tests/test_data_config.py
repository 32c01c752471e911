"""dataset.yaml: every way train/val may be given, class names, and the errors a user can act on."""
from __future__ import annotations

from pathlib import Path

import pytest

from autonn_nas.data import DatasetError, load_dataset_config
from autonn_nas.data.config import IMAGE_EXTENSIONS
from test_data_support import make_dataset, make_split, write_image, write_yaml


def test_folders_relative_to_yaml(tmp_path):
    config = load_dataset_config(make_dataset(tmp_path, train=3, val=2))
    assert [p.name for p in config.train] == ["img0.jpg", "img1.jpg", "img2.jpg"]
    assert len(config.val) == 2 and config.nc == 2 and config.names == ["c0", "c1"]
    assert config.root == tmp_path.resolve()


def test_folder_argument_finds_dataset_yaml(tmp_path):
    make_dataset(tmp_path)
    assert len(load_dataset_config(tmp_path).train) == 4


def test_path_key_and_list_files(tmp_path):
    root = tmp_path / "data"
    train = make_split(root, "train", 3)
    val = make_split(root, "val", 2)
    # YOLOv5 list files: './' lines relative to the list file's folder, other relative lines to `path`
    (root / "train.txt").write_text("./images/train/img0.jpg\nimages/train/img1.jpg\n\n# a comment\n" + f"{train[2]}\n")
    (root / "lists").mkdir()
    (root / "lists" / "val.txt").write_text("./../images/val/img0.jpg\n./../images/val/img1.jpg\n")
    yaml_path = write_yaml(tmp_path / "cfg" / "data.yaml", {"path": "../data", "train": "train.txt", "val": "lists/val.txt", "names": ["a", "b"]})
    config = load_dataset_config(yaml_path)
    assert [p.resolve() for p in config.train] == [p.resolve() for p in train]
    assert [p.resolve() for p in config.val] == [p.resolve() for p in val]
    assert config.nc == 2


def test_list_of_folders_and_absolute_paths(tmp_path):
    first = make_split(tmp_path / "a", "train", 2)
    second = make_split(tmp_path / "b", "train", 3)
    val = make_split(tmp_path / "a", "val", 1)
    yaml_path = write_yaml(
        tmp_path / "cfg" / "dataset.yaml",
        {"train": [str(tmp_path / "a" / "images" / "train"), "../b/images/train"], "val": str(val[0].parent), "nc": 2, "names": ["a", "b"]},
    )
    config = load_dataset_config(yaml_path)
    assert [p.resolve() for p in config.train] == [p.resolve() for p in first + second]
    assert len(config.val) == 1


def test_dict_names_and_nc_from_names(tmp_path):
    make_split(tmp_path, "train", 1)
    yaml_path = write_yaml(tmp_path / "d.yaml", {"train": "images/train", "val": "images/train", "names": {1: "dog", 0: "cat", "2": "cow"}})
    config = load_dataset_config(yaml_path)
    assert config.names == ["cat", "dog", "cow"] and config.nc == 3


def test_nc_without_names_invents_names_and_says_so_once(tmp_path, caplog):
    make_split(tmp_path, "train", 1)
    yaml_path = write_yaml(tmp_path / "d.yaml", {"train": "images/train", "val": "images/train", "nc": 3})
    with caplog.at_level("WARNING", logger="autonn_nas"):
        config = load_dataset_config(yaml_path)
        load_dataset_config(yaml_path)  # a run reads its dataset.yaml more than once
    assert config.names == ["class0", "class1", "class2"]
    said = [r.getMessage() for r in caplog.records if "no 'names'" in r.getMessage()]
    assert len(said) == 1 and "class0..class2" in said[0] and str(yaml_path.resolve()) in said[0]


def test_a_misspelt_key_is_named_with_the_key_it_is_closest_to(tmp_path, caplog):
    make_split(tmp_path, "train", 1)
    yaml_path = write_yaml(tmp_path / "typo.yaml", {"train": "images/train", "val": "images/train", "nc": 2, "nmaes": ["a", "b"],
                                                    "vall": "x", "flavour": 1, "download": "https://example.org/d.zip"})
    with caplog.at_level("WARNING", logger="autonn_nas"):
        load_dataset_config(yaml_path)
    said = "\n".join(r.getMessage() for r in caplog.records)
    assert "unknown key 'nmaes' is ignored; did you mean 'names'?" in said
    assert "unknown key 'vall' is ignored; did you mean 'val'?" in said
    assert "unknown key 'flavour' is ignored; known keys: path, train, val, test, nc, names" in said
    assert "download" not in said  # other tools' keys are not typos


def test_image_extensions_case_insensitive(tmp_path):
    folder = tmp_path / "images" / "train"
    for ext in sorted(IMAGE_EXTENSIONS):
        write_image(folder / f"x{ext.upper()}", format="PNG")  # content format does not matter for listing
    (folder / "notes.txt").write_text("not an image")
    config = load_dataset_config(write_yaml(tmp_path / "d.yaml", {"train": "images/train", "val": "images/train", "nc": 1}))
    assert len(config.train) == len(IMAGE_EXTENSIONS)


def test_stale_path_falls_back_to_yaml_folder(tmp_path):
    make_split(tmp_path, "train", 1)
    config = load_dataset_config(write_yaml(tmp_path / "d.yaml", {"path": "/nonexistent/old/mount", "train": "images/train", "val": "images/train", "nc": 1}))
    assert config.root == tmp_path.resolve()


@pytest.mark.parametrize(
    "data, message",
    [
        ({"train": "images/train", "val": "images/train", "nc": 3, "names": ["a", "b"]}, "nc is 3 but names lists 2"),
        ({"val": "images/train", "nc": 1}, "missing 'train'"),
        ({"train": "images/train", "nc": 1}, "missing 'val'"),
        ({"train": "images/nowhere", "val": "images/train", "nc": 1}, "train path 'images/nowhere' not found"),
        ({"path": "nowhere", "train": "images/nowhere", "val": "images/train", "nc": 1}, "dataset path 'nowhere' not found"),
        ({"train": "empty", "val": "images/train", "nc": 1}, "holds no images"),
        ({"train": "images/train", "val": "images/train"}, "give 'names'"),
        ({"train": "images/train", "val": "images/train", "nc": "two"}, "'nc' must be a positive integer"),
        ({"train": "images/train", "val": "images/train", "names": {0: "a", 2: "c"}}, "without gaps"),
        ({"train": "images/train", "val": "images/train", "names": "a b"}, "'names' must be a list"),
    ],
)
def test_errors_name_the_file_and_problem(tmp_path, data, message):
    make_split(tmp_path, "train", 1)
    (tmp_path / "empty").mkdir()
    yaml_path = write_yaml(tmp_path / "bad.yaml", data)
    with pytest.raises(DatasetError) as error:
        load_dataset_config(yaml_path)
    assert message in str(error.value) and str(yaml_path.resolve()) in str(error.value)
    assert isinstance(error.value, ValueError)


def test_missing_yaml(tmp_path):
    with pytest.raises(DatasetError, match="dataset file not found: .*missing.yaml"):
        load_dataset_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize("text, message", [("train: [images\nval: x\n", "line 2, column 4: not valid YAML"), ("- just\n- a list\n", "expected a mapping")])
def test_malformed_yaml(tmp_path, text, message):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(DatasetError, match=message) as error:
        load_dataset_config(path)
    assert "broken.yaml" in str(error.value)


def test_list_file_with_missing_image_is_reported_not_dropped(tmp_path):
    from autonn_nas.data import YoloDataset

    make_split(tmp_path, "train", 2)
    (tmp_path / "train.txt").write_text("./images/train/img0.jpg\n./images/train/img1.jpg\n./images/train/typo.jpg\n")
    config = load_dataset_config(write_yaml(tmp_path / "d.yaml", {"train": "train.txt", "val": "train.txt", "nc": 2}))
    assert len(config.train) == 3
    dataset = YoloDataset(config.train, 64, nc=config.nc, cache=False)
    assert len(dataset) == 2
    assert [(Path(s.path).name, s.reason) for s in dataset.report.skipped_images] == [("typo.jpg", "image file not found")]
