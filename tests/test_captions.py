"""Image–caption layouts (Flickr30k/8k, COCO, Karpathy) as published, split hygiene by group, generated Flickr30k."""

from __future__ import annotations

import json
import os

import fsspec
import pandas as pd
import pytest
from PIL import Image

from plait.config import SplitConfig, validate
from plait.data.captions import read_captions
from plait.data.tables import assign_splits, read_table
from plait.errors import PlaitError

COLUMNS = ["image", "caption", "image_id", "caption_number"]


def touch_images(folder, names):
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"jpeg")


def assert_pairs(table, expected):
    """`expected`: (image_id, caption) per row, in file order; caption numbers count within each image."""
    assert [(i, c) for i, c in zip(table["image_id"], table["caption"])] == expected
    seen: dict[str, int] = {}
    for image_id, number in zip(table["image_id"], table["caption_number"]):
        assert number == seen.get(image_id, 0)
        seen[image_id] = number + 1
    assert all(os.path.isfile(path) for path in table["image"])


def test_kaggle_results_csv_recovers_a_fused_comment_and_drops_empty_ones(tmp_path, capsys):
    root = tmp_path / "flickr30k_images"
    touch_images(root / "flickr30k_images", ["1000092795.jpg", "2199200615.jpg"])
    (root / "results.csv").write_text(
        "image_name| comment_number| comment\n"
        "1000092795.jpg| 0| Two young guys with shaggy hair look at their hands .\n"
        "1000092795.jpg| 1| Two friends enjoy time spent together | outside .\n"
        "2199200615.jpg| 3| A dog runs .\n"
        "2199200615.jpg| 4   A dog runs across the grass .\n"  # the real file's row 19999: no pipe before the comment
        "2199200615.jpg| 5| \n"
        "2199200615.jpg| 6\n"
        "\n")
    for table in (read_table(str(root / "results.csv"), "flickr30k"), read_captions(str(tmp_path), "flickr30k")):
        assert list(table.columns) == COLUMNS  # no splits in this layout
        assert_pairs(table, [("1000092795.jpg", "Two young guys with shaggy hair look at their hands ."),
                             ("1000092795.jpg", "Two friends enjoy time spent together | outside ."),
                             ("2199200615.jpg", "A dog runs ."), ("2199200615.jpg", "A dog runs across the grass .")])
        assert table["image"][0] == str(root / "flickr30k_images" / "1000092795.jpg")
    assert "2 caption(s) without text left out (the first at line 6)" in capsys.readouterr().err


def test_original_token_file_and_kaggle_captions_txt(tmp_path):
    touch_images(tmp_path / "flickr30k-images", ["1000092795.jpg", "10002456.jpg"])
    (tmp_path / "results_20130124.token").write_text(
        "1000092795.jpg#0\tTwo young guys with shaggy hair .\n1000092795.jpg#1\tTwo friends .\n10002456.jpg#0\tWorkers , look .\n")
    table = read_table(str(tmp_path / "results_20130124.token"))  # .token needs no data.format
    assert_pairs(table, [("1000092795.jpg", "Two young guys with shaggy hair ."), ("1000092795.jpg", "Two friends ."),
                         ("10002456.jpg", "Workers , look .")])
    assert table["image"][2] == str(tmp_path / "flickr30k-images" / "10002456.jpg")

    eight = tmp_path / "flickr8k"
    touch_images(eight / "Images", ["1000268201_693b08cb0e.jpg", "1001773457_577c3a7d70.jpg"])
    (eight / "captions.txt").write_text(
        "image,caption\n"
        "1000268201_693b08cb0e.jpg,A child in a pink dress , climbing up a set of stairs , in an entry way .\n"
        '1000268201_693b08cb0e.jpg,"A girl, going into a wooden building ."\n'
        "1001773457_577c3a7d70.jpg,A black dog and a spotted dog are fighting\n")
    table = read_table(str(eight), "flickr30k")
    assert_pairs(table, [("1000268201_693b08cb0e.jpg", "A child in a pink dress , climbing up a set of stairs , in an entry way ."),
                         ("1000268201_693b08cb0e.jpg", "A girl, going into a wooden building ."),
                         ("1001773457_577c3a7d70.jpg", "A black dog and a spotted dog are fighting")])


def coco_json(path, images, captions):
    """`images`: {id: file_name}; `captions`: [(image_id, caption)]."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "info": {"year": 2017}, "licenses": [],
        "images": [{"id": i, "file_name": name, "width": 640, "height": 480} for i, name in images.items()],
        "annotations": [{"image_id": i, "id": 100 + n, "caption": c} for n, (i, c) in enumerate(captions)],
    }))


def test_a_coco_folder_reads_every_captions_file_with_its_split(tmp_path):
    coco_json(tmp_path / "annotations" / "captions_val2017.json", {139: "000000000139.jpg"},
              [(139, "A woman stands in the kitchen.\n"), (139, " A room with chairs.")])
    coco_json(tmp_path / "annotations" / "captions_train2017.json", {9: "000000000009.jpg", 25: "000000000025.jpg"},
              [(9, "Closeup of bins of food."), (25, "A giraffe eating food."), (9, "A meal in a box.")])
    touch_images(tmp_path / "train2017", ["000000000009.jpg", "000000000025.jpg"])
    touch_images(tmp_path / "val2017", ["000000000139.jpg"])
    table = read_table(str(tmp_path), "coco")
    assert list(table.columns) == [*COLUMNS, "split"]
    assert_pairs(table, [("9", "Closeup of bins of food."), ("25", "A giraffe eating food."), ("9", "A meal in a box."),
                         ("139", "A woman stands in the kitchen."), ("139", "A room with chairs.")])
    assert table["split"].tolist() == ["train"] * 3 + ["validation"] * 2
    assert table["image"][3] == str(tmp_path / "val2017" / "000000000139.jpg")


def test_one_coco_file_finds_its_split_folder_above_annotations_and_json_is_sniffed(tmp_path):
    path = tmp_path / "annotations" / "captions_val2014.json"
    coco_json(path, {42: "COCO_val2014_000000000042.jpg"}, [(42, "A bike."), (42, "A red bike.")])
    touch_images(tmp_path / "val2014", ["COCO_val2014_000000000042.jpg"])
    for table in (read_captions(str(path), "coco"), read_table(str(path))):  # format auto: the content says COCO
        assert_pairs(table, [("42", "A bike."), ("42", "A red bike.")])
        assert table["split"].tolist() == ["validation", "validation"]


def test_karpathy_split_file_counts_restval_as_train(tmp_path):
    images = [("val2014", "COCO_val2014_000000391895.jpg", "test"), ("val2014", "COCO_val2014_000000522418.jpg", "restval"),
              ("train2014", "COCO_train2014_000000318556.jpg", "train"), ("val2014", "COCO_val2014_000000184613.jpg", "val")]
    (tmp_path / "dataset_coco.json").write_text(json.dumps({"dataset": "coco", "images": [
        {"filepath": folder, "filename": name, "split": split, "imgid": n, "cocoid": n,
         "sentences": [{"raw": f"Caption {k} of {n}.", "tokens": ["caption", str(k)], "imgid": n} for k in range(2)]}
        for n, (folder, name, split) in enumerate(images)]}))
    touch_images(tmp_path, [f"{folder}/{name}" for folder, name, _ in images])
    for table in (read_table(str(tmp_path / "dataset_coco.json"), "karpathy"), read_table(str(tmp_path / "dataset_coco.json"))):
        ids = [f"{folder}/{name}" for folder, name, _ in images]
        assert_pairs(table, [(ids[n], f"Caption {k} of {n}.") for n in range(4) for k in range(2)])
        assert table["split"].tolist() == [s for s in ["test", "train", "train", "validation"] for _ in range(2)]
        assert table["image"][0] == str(tmp_path / "val2014" / "COCO_val2014_000000391895.jpg")


def test_images_not_found_keep_their_names_and_remote_tables_get_full_urls(tmp_path):
    (tmp_path / "captions.txt").write_text("image,caption\na.jpg,A cat .\n")
    assert read_table(str(tmp_path / "captions.txt"), "flickr30k")["image"].tolist() == ["a.jpg"]  # data.root decides
    with fsspec.open("memory://captions-test/flickr/results.csv", "w") as handle:
        handle.write("image_name| comment_number| comment\n1.jpg| 0| A cat .\n")
    with fsspec.open("memory://captions-test/flickr/flickr30k_images/1.jpg", "wb") as handle:
        handle.write(b"jpeg")
    table = read_table("memory://captions-test/flickr", "flickr30k")
    assert table["image"].tolist() == ["memory://captions-test/flickr/flickr30k_images/1.jpg"]


def test_wrong_files_are_clear_errors(tmp_path):
    with pytest.raises(PlaitError, match="no such Flickr captions file or folder"):
        read_captions(str(tmp_path / "absent"), "flickr30k")
    with pytest.raises(PlaitError, match="no Flickr captions file here"):
        read_captions(str(tmp_path), "flickr30k")
    (tmp_path / "results.csv").write_text("image,comment_number,comment\na.jpg,0,A cat\n")
    with pytest.raises(PlaitError, match=r"results\.csv: not a Flickr captions file: expected the header `image_name\| comment_number\| comment`"):
        read_captions(str(tmp_path / "results.csv"), "flickr30k")
    with pytest.raises(PlaitError, match="no COCO captions here"):
        read_captions(str(tmp_path), "coco")
    with pytest.raises(PlaitError, match="no such COCO captions file or folder"):
        read_captions(str(tmp_path / "captions_val2017.json"), "coco")
    (tmp_path / "dataset_flickr30k.json").write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": []}))
    with pytest.raises(PlaitError, match="dataset_flickr30k.json: not a Karpathy split file"):
        read_captions(str(tmp_path / "dataset_flickr30k.json"), "karpathy")
    (tmp_path / "captions_train2017.json").write_text(json.dumps({"images": [{"filename": "a.jpg", "split": "train", "sentences": []}]}))
    with pytest.raises(PlaitError, match="captions_train2017.json: not a COCO captions file"):
        read_captions(str(tmp_path / "captions_train2017.json"), "coco")
    (tmp_path / "rows.json").write_text(json.dumps([{"a": 1}]))
    with pytest.raises(PlaitError, match="rows.json: cannot tell what this JSON holds.*set data.format to coco or karpathy"):
        read_table(str(tmp_path / "rows.json"))
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(PlaitError, match="broken.json: not valid JSON"):
        read_table(str(tmp_path / "broken.json"))
    coco_json(tmp_path / "c" / "captions_val2017.json", {1: "a.jpg"}, [(2, "A cat.")])
    with pytest.raises(PlaitError, match=r"annotations\[0\] names image_id 2, which is not in `images`"):
        read_captions(str(tmp_path / "c"), "coco")


def test_a_random_split_keeps_every_group_whole_and_counts_groups():
    table = pd.DataFrame({"image_id": [f"img{i // 5}" for i in range(500)], "caption": [f"c{i}" for i in range(500)]})
    config = SplitConfig(ratios=(0.8, 0.1, 0.1), seed=1, group="image_id")
    split = assign_splits(table, config, "t")
    assert (split.groupby(table["image_id"]).nunique() == 1).all()
    assert split.groupby(table["image_id"]).first().value_counts().to_dict() == {"train": 80, "validation": 10, "test": 10}
    assert split.tolist() == assign_splits(table, config, "t").tolist()
    stratified = table.assign(kind=[["a", "b"][(i // 5) % 2] for i in range(500)])
    split = assign_splits(stratified, SplitConfig(ratios=(0.8, 0.1, 0.1), group="image_id", stratify="kind"), "t")
    assert pd.crosstab(stratified["kind"], split).to_numpy().tolist() == [[25, 200, 25]] * 2  # test, train, validation
    mixed = stratified.assign(kind=["a", "b"] * 250)
    with pytest.raises(PlaitError, match="row 1: group 'img0' has more than one value of 'kind'"):
        assign_splits(mixed, SplitConfig(ratios=(0.8, 0.1, 0.1), group="image_id", stratify="kind"), "t")


def test_a_split_column_that_leaks_a_group_is_an_error():
    table = pd.DataFrame({"image_id": ["a", "a", "b", "b", "c"], "split": ["train", "train", "val", "test", "test"]})
    with pytest.raises(PlaitError, match=r"t, column 'image_id': 'b' is in two splits, validation \(row 2\) and test \(row 3\)"):
        assign_splits(table, SplitConfig(column="split", group="image_id"), "t")
    assert assign_splits(table.assign(split=["train", "train", "val", "val", "test"]), SplitConfig(group="image_id"), "t").tolist() == \
        ["train", "train", "validation", "validation", "test"]
    with pytest.raises(PlaitError, match="no column 'image' \\(needed by data.split.group\\)"):
        assign_splits(table, SplitConfig(group="image"), "t")


def test_caption_formats_are_config_values():
    config = validate({"data": {"table": "captions", "format": "coco", "split": {"ratios": [0.8, 0.1, 0.1], "group": "image_id"}},
                       "inputs": [{"name": "x", "type": "numeric", "column": "x"}],
                       "outputs": [{"name": "y", "type": "number", "column": "y"}]})
    assert config.data.format == "coco" and config.data.split.group == "image_id"


def test_generated_flickr30k_has_the_kaggle_layout_and_five_captions_per_image(tmp_path):
    from plait.demo.synthetic_captions import make_flickr30k

    results = make_flickr30k(tmp_path, images=12, size=64, seed=5)
    assert results == tmp_path / "flickr30k_images" / "results.csv"
    lines = results.read_text().splitlines()
    assert lines[0] == "image_name| comment_number| comment" and lines[1].split("| ")[1] == "0"
    table = read_table(str(results), "flickr30k")
    assert len(table) == 60 and table["image_id"].nunique() == 12
    assert table["image_id"].str.fullmatch(r"\d+\.jpg").all()
    assert (table.groupby("image_id")["caption"].nunique() == 5).all()
    assert table["caption_number"].tolist() == list(range(5)) * 12
    for path in table["image"].unique():
        assert path == str(tmp_path / "flickr30k_images" / "flickr30k_images" / os.path.basename(path))
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.size == (64, 64) and image.convert("RGB").getextrema() != ((0, 0),) * 3
    again = make_flickr30k(tmp_path / "again", images=12, size=64, seed=5)
    assert again.read_bytes() == results.read_bytes()
    first = sorted((tmp_path / "flickr30k_images" / "flickr30k_images").iterdir())[0]
    assert (tmp_path / "again" / "flickr30k_images" / "flickr30k_images" / first.name).read_bytes() == first.read_bytes()
