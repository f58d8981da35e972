"""The `caption` output end to end: targets and teacher forcing, the decoder attending to image tokens, generation,
evaluation against grouped references, resume through the warm-up, and using a trained run (predict, caption,
export)."""

import html
import json
from pathlib import Path
import math

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file

from plait import api
from plait.config import validate
from plait.data.dataset import Preprocessor
from plait.demo.synthetic_captions import make_flickr30k
from plait.models.model import MultimodalModel
from plait.runs import Run
from plait.training.trainer import Trainer
from tests.conftest import ROOT, run_cli

RECIPE = ROOT / "recipes" / "image_captioning.yaml"


def caption_config(table, **train) -> dict:
    return {
        "name": "captions",
        "data": {"table": str(table), "format": "flickr30k", "split": {"ratios": [0.7, 0.15, 0.15], "seed": 0}},
        "inputs": [{"name": "image", "type": "image", "column": "image", "size": 32,
                    "encoder": {"name": "cnn", "channels": [8, 16]}}],
        "outputs": [{"name": "caption", "type": "caption", "column": "caption",
                     "tokenizer": {"vocab_size": 300, "max_length": 20},
                     "decoder": {"dim": 32, "heads": 2, "layers": 1, "ff_dim": 64, "dropout": 0.0},
                     "generation": {"beam_size": 2}, "samples": 5}],
        "fusion": {"name": "concat", "hidden": []},
        "train": {"epochs": 2, "batch_size": 16, "threads": 1, "optimizer": {"name": "adamw", "lr": 2e-3},
                  "scheduler": {"name": "linear_warmup", "warmup_steps": 10}, **train},
    }


@pytest.fixture(scope="module")
def flickr(tmp_path_factory):
    return make_flickr30k(tmp_path_factory.mktemp("flickr"), images=40, size=32)


@pytest.fixture(scope="module")
def trained(flickr, tmp_path_factory):
    """A small captioning run, shared by the tests that use a trained run."""
    run_dir = tmp_path_factory.mktemp("runs") / "run"
    api.train(validate(caption_config(flickr)), run_dir=run_dir)
    return run_dir


def fitted(flickr, **changes):
    config = validate({**caption_config(flickr), **changes})
    preprocessor = Preprocessor(config, str(flickr.parent))
    from plait.data.tables import read_table

    table = read_table(str(flickr), "flickr30k")
    preprocessor.fit(table)
    return config, preprocessor, table


def test_targets_are_shifted_padding_is_ignored_and_long_captions_are_cut(flickr):
    _, preprocessor, _ = fitted(flickr)
    task = preprocessor.tasks["caption"]
    tokenizer = task.tokenizer
    short = task.encode("a red circle")
    assert short.shape == (20,) and short[0] == tokenizer.bos_id
    words = tokenizer.encode("a red circle")
    assert short[1:1 + len(words)].tolist() == words and short[1 + len(words)] == tokenizer.eos_id
    assert set(short[2 + len(words):].tolist()) == {tokenizer.pad_id}
    long = task.encode(" ".join(["a red circle above a blue square"] * 10))
    assert long[-1] == tokenizer.pad_id and tokenizer.eos_id not in long.tolist()  # cut to max_length: not ended
    assert (long[:-1] != tokenizer.pad_id).all()

    batch = task.stack([short, long, None])
    collated = task.collate(batch)
    assert collated["input"].shape == (3, 18) and collated["labels"].shape == (3, 18)  # the cut row: <s> + 18 tokens
    assert torch.equal(collated["input"][0, :len(words) + 1], short[:len(words) + 1])
    assert torch.equal(collated["labels"][0, :len(words) + 1], short[1:len(words) + 2])
    assert (collated["labels"][0, len(words) + 1:] == -100).all()  # padding left out of the loss
    assert (collated["labels"][2] == -100).all()  # a row without a caption adds nothing


def test_a_tokenizer_given_by_path_is_used_as_it_is(flickr, tmp_path):
    _, trained_here, _ = fitted(flickr)
    trained_here.tasks["caption"].tokenizer.save(tmp_path / "tok")
    config = caption_config(flickr)
    config["outputs"][0]["tokenizer"] = {"path": str(tmp_path / "tok"), "max_length": 20}
    _, loaded, _ = fitted(flickr, outputs=config["outputs"])
    text = "a small green triangle below a red square"
    assert loaded.tasks["caption"].encode(text).tolist() == trained_here.tasks["caption"].encode(text).tolist()


@pytest.mark.parametrize("arch, overrides, tokens", [
    ("vit", {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32, "patch_size": 8}, 17),
    ("clip", {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32, "patch_size": 8}, 17),
    ("resnet", {"embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1]}, 16),  # a 4×4 grid
])
def test_every_image_backbone_gives_tokens_to_attend_to(arch, overrides, tokens):
    from plait.data.features.image import ImageFeature, ImageSettings
    from plait.models.encoders.image import HfImageConfig, ImageHf

    feature = ImageFeature(ImageSettings(name="image", column="image", size=32))
    encoder = ImageHf(HfImageConfig(arch=arch, overrides=overrides), feature).eval()
    batch = {"value": torch.randn(2, 3, 32, 32), "present": torch.ones(2, dtype=torch.bool)}
    vector, sequence = encoder.encode_tokens(batch)
    assert torch.equal(vector, encoder(batch)) and vector.shape == (2, encoder.out_dim)
    assert sequence.shape[0] == 2 and sequence.shape[2] == encoder.out_dim
    assert sequence.shape[1] == tokens  # ViT, CLIP: 16 patches + CLS; ResNet: grid cells


def test_the_decoder_attends_to_image_tokens_and_beam_one_is_greedy(flickr):
    config, preprocessor, table = fitted(flickr)
    torch.manual_seed(0)
    model = MultimodalModel(config, preprocessor.features, preprocessor.tasks).eval()
    encoded = preprocessor.encode(table.head(6), "train", "table")
    batch = encoded.batch(torch.arange(6))
    inputs = {name: preprocessor.features[name].prepare(cells, False) for name, cells in batch["inputs"].items()}
    targets = {"caption": preprocessor.tasks["caption"].collate(batch["targets"]["caption"])}
    logits = model(inputs, targets=targets)["caption"]
    assert logits.shape[:2] == targets["caption"]["input"].shape and logits.shape[2] == preprocessor.tasks["caption"].tokenizer.vocab_size
    vectors, tokens = model.encode(inputs, with_tokens=True)
    assert tokens["image"].shape == (6, 64, 16)  # 8×8 grid cells of the last 16-channel block
    assert model(inputs) == {}  # without targets the decoder is not run: it writes through generate
    greedy = model.generate(inputs, "caption", beam_size=1, max_length=12)
    assert greedy == model.generate(inputs, "caption", beam_size=1, length_penalty=2.0, max_length=12)
    from plait.models.search import greedy as greedy_search

    head = model.heads["caption"]
    memory = head.memory(model.fusion(vectors), tokens)
    assert greedy == greedy_search(head.decoder, memory, None, head.bos_id, head.eos_id, 12)


def test_a_trained_run_has_its_tokenizer_caption_metrics_and_samples(trained, flickr):
    vocabulary = json.loads((trained / "tokenizers" / "caption" / "vocab.json").read_text())
    assert {"<pad>", "<s>", "</s>"} <= set(vocabulary) and (trained / "tokenizers" / "caption" / "merges.txt").is_file()
    metrics = json.loads((trained / "evaluation" / "test.json").read_text())
    assert {"caption.loss", "caption.perplexity", "caption.bleu1", "caption.bleu4", "caption.cider"} <= set(metrics)
    assert math.isclose(metrics["caption.perplexity"], math.exp(metrics["caption.loss"]), rel_tol=1e-6)
    samples = json.loads((trained / "evaluation" / "test_caption_samples.json").read_text())
    table = pd.read_csv(flickr, sep="|", skipinitialspace=True)
    per_image = table.groupby(table.columns[0]).size()
    assert 1 <= len(samples) <= 5
    for sample in samples:  # one caption per image, scored against all five of its references
        assert isinstance(sample["caption"], str) and len(sample["references"]) == per_image[sample["image"].split("/")[-1]]
    logged = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert any("validation.caption.bleu4" in record for record in logged)


def test_splits_csv_names_the_test_images_of_the_random_split(trained, flickr):
    splits = pd.read_csv(trained / "splits.csv")
    assert len(splits) == len(pd.read_csv(flickr, sep="|", skipinitialspace=True))  # every caption row
    assert set(splits["file"]) == {str(flickr)} and splits["place"].str.fullmatch(r"line \d+").all()
    assert splits.groupby("image")["split"].nunique().max() == 1  # an image's captions all went to one split
    test_images = {Path(path).name for path in splits.loc[splits["split"] == "test", "image"]}
    samples = json.loads((trained / "evaluation" / "test_caption_samples.json").read_text())
    assert {Path(sample["image"]).name for sample in samples} <= test_images


def test_evaluate_baseline_scores_the_caption_of_the_nearest_training_image(trained):
    from tests.conftest import run_cli_here

    result = run_cli_here("evaluate", trained, "--split", "test", "--baseline", "--untrained", "--json")
    assert result.returncode == 0, result.stderr
    floors = json.loads(result.stdout)
    assert set(floors) == {"trained", "baseline", "shuffled_inputs", "untrained", "nearest_features", "nearest_untrained_features"}
    assert floors["shuffled_inputs"].keys() == floors["trained"].keys()  # the trained model given other images
    for column in ("baseline", "nearest_features", "nearest_untrained_features"):  # the model's own metric names
        assert {"caption.bleu4", "caption.cider"} <= set(floors[column]) <= set(floors["trained"]), column
    # searched among the training images themselves, each one finds itself: its caption is one of its references
    run = Run.load(trained)
    train = run.encode(["train"])["train"]
    assert run.nearest_captions(train, train, "pixels")["caption.bleu1"] == pytest.approx(1.0)


def test_the_report_shows_each_images_caption_next_to_its_references(trained):
    from tests.test_report import section

    gallery = section(trained, "samples")
    rows = gallery.count("<tr>") - 1
    metrics = section(trained, "metrics")  # the floors beside the model: retrieval of a training image's caption
    assert "test: nearest training image (pixels)" in metrics and "test: nearest training image (encoder)" in metrics
    splits = Run.load(trained).encode(["test"])
    assert rows == min(12, len(set(splits["test"].row_info["caption"]["group"])))  # report.samples images at most
    assert gallery.count("references:") == rows and gallery.count('<img class="thumb"') == rows  # one row per image
    assert gallery.count("<li>") == 5 * rows  # all five references of each image
    first = json.loads((trained / "evaluation" / "test_caption_samples.json").read_text())[0]
    assert f"<b>{html.escape(first['caption'])}</b>" in gallery  # the gallery starts with the first image written for
    assert section(trained, "ablation") == ""  # one input: nothing to leave out


def test_plait_caption_and_predict_on_a_folder_write_captions(trained, flickr, tmp_path):
    images = sorted((flickr.parent / "flickr30k_images").glob("*.jpg"))[:3]
    one = run_cli("caption", trained, images[0])
    assert one.stdout.strip() and "\t" not in one.stdout
    several = run_cli("caption", trained, *images, "--beam-size", "1")
    lines = several.stdout.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(p) for p in images]

    folder = tmp_path / "photos"
    folder.mkdir()
    for image in images:
        (folder / image.name).write_bytes(image.read_bytes())
    run_cli("predict", trained, "--input", folder, "--output", tmp_path / "captions.csv")
    written = pd.read_csv(tmp_path / "captions.csv")
    assert list(written.columns) == ["row", "image", "caption_pred"]
    assert [p.split("/")[-1] for p in written["image"]] == [p.name for p in images]
    assert written["caption_pred"].map(lambda text: isinstance(text, str) and len(text) > 0).all()


def test_caption_errors_are_clear(trained, tmp_path):
    missing = run_cli("caption", trained, tmp_path / "absent.jpg", check=False)
    assert missing.returncode == 1 and "absent.jpg: no such file" in missing.stderr
    not_an_image = tmp_path / "note.jpg"
    not_an_image.write_text("hello")
    bad = run_cli("caption", trained, not_an_image, check=False)
    assert bad.returncode == 1 and "note.jpg" in bad.stderr and "not an image file" in bad.stderr


def test_export_writes_a_hub_folder_that_plait_reads_back(trained, tmp_path, monkeypatch):
    out = tmp_path / "export"
    run_cli("export", trained, out, "--format", "hf")
    assert {"model.safetensors", "preprocessing.json", "config.yaml", "config.json", "README.md"} <= {p.name for p in out.iterdir()}
    assert {"vocab.json", "merges.txt", "tokenizer.json"} <= {p.name for p in (out / "tokenizers" / "caption").iterdir()}
    code = {p.name for p in (out / "code").iterdir()}  # a SageMaker endpoint's handler, and plait to install for it
    assert {"inference.py", "requirements.txt"} <= code and any(name.endswith(".whl") for name in code)
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: plait") and "pipeline_tag: image-to-text" in card and "caption.bleu4" in card
    assert json.loads((out / "config.json").read_text())["outputs"] == [{"name": "caption", "type": "caption", "column": "caption"}]
    original, exported = load_file(trained / "checkpoints" / "best" / "model.safetensors"), load_file(out / "model.safetensors")
    assert all(torch.equal(original[k], exported[k]) for k in original)
    run = Run.load(out)
    assert run.checkpoint == out and run.preprocessor.tasks["caption"].tokenizer.vocab_size > 3

    calls = []

    class FakeHub:
        def create_repo(self, repo, private, exist_ok):
            calls.append(("create", repo, private, exist_ok))

        def upload_folder(self, repo_id, folder_path, commit_message):
            calls.append(("upload", repo_id, folder_path))

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    from plait.inference.export import push_to_hub

    assert push_to_hub(out, "someone/shapes") == "https://huggingface.co/someone/shapes"
    assert calls == [("create", "someone/shapes", False, True), ("upload", "someone/shapes", str(out))]
    again = run_cli("export", trained, out, check=False)
    assert again.returncode == 1 and "not empty" in again.stderr


def test_captions_from_an_exported_folder_match_the_run(trained, flickr, tmp_path):
    out = tmp_path / "export"
    api_out = run_cli("export", trained, out)
    assert str(out) in api_out.stdout
    image = sorted((flickr.parent / "flickr30k_images").glob("*.jpg"))[0]
    assert run_cli("caption", out, image).stdout == run_cli("caption", trained, image).stdout


def test_resume_continues_the_warm_up_exactly(flickr, tmp_path, monkeypatch):
    settings = {"epochs": 2, "log_every_steps": 1, "checkpoint_every_steps": 2,
                "scheduler": {"name": "linear_warmup", "warmup_steps": 8}}
    config = validate(caption_config(flickr, **settings))
    api.train(config, run_dir=tmp_path / "whole")

    step = Trainer.train_step

    def killed_after_five_steps(self, group, rows):
        if self.progress.step == 5:
            raise KeyboardInterrupt  # as if killed: the last checkpoint is the one of step 4, inside the warm-up
        return step(self, group, rows)

    monkeypatch.setattr(Trainer, "train_step", killed_after_five_steps)
    with pytest.raises(KeyboardInterrupt):
        api.train(config, run_dir=tmp_path / "part")
    monkeypatch.setattr(Trainer, "train_step", step)
    api.train(resume=tmp_path / "part")

    def rates(run):
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        return [(r["step"], r["lr"]) for r in records if "lr" in r]

    whole = rates(tmp_path / "whole")
    # the rate logged after step s is the one step s + 1 will use: a linear warm-up reaching 2e-3 after 8 steps
    assert whole[:7] == [(s, pytest.approx(2e-3 * (s + 1) / 8)) for s in range(1, 8)]
    assert rates(tmp_path / "part") == whole
    a = load_file(tmp_path / "whole" / "checkpoints" / "last" / "model.safetensors")
    b = load_file(tmp_path / "part" / "checkpoints" / "last" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_frozen_vit_keeps_its_patch_tokens_in_the_cache(flickr, tmp_path):
    config = caption_config(flickr, epochs=1)
    config["inputs"][0]["encoder"] = {
        "name": "hf_image", "arch": "vit", "freeze": True, "cache_embeddings": True,
        "overrides": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64, "patch_size": 8}}
    for attempt in ("cold", "warm"):
        api.train(validate(config), run_dir=tmp_path / attempt)
    from plait.data.cache_folder import cache_folder, summarise

    embeddings = [row for row in summarise(cache_folder()) if row["namespace"].startswith("embedding-hf_image")]
    assert len(embeddings) == 1 and embeddings[0]["cells"] == 40  # one entry per image, not per caption
    assert embeddings[0]["hits"] >= 200 and embeddings[0]["misses"] == 40  # the second run ran no encoder
    store = next(cache_folder().glob(f"{embeddings[0]['namespace']}/shard-*"))
    assert (store / "tokens.npy").is_file()  # 16 patches + CLS, kept for the decoder to attend to
    cold = json.loads((tmp_path / "cold" / "evaluation" / "test.json").read_text())
    warm = json.loads((tmp_path / "warm" / "evaluation" / "test.json").read_text())
    assert cold == warm and math.isfinite(cold["caption.loss"])


def test_the_recipe_is_the_documented_pipeline():
    raw = yaml.safe_load(RECIPE.read_text())
    raw["data"]["table"] = "/nowhere/results.csv"
    config = validate(raw)
    image, caption = config.inputs[0], config.outputs[0]
    assert (image.encoder.name, image.encoder.arch, image.augment.hflip) == ("hf_image", "vit", 0.0)
    assert (caption.type, caption.references, config.data.split.group) == ("caption", "image", "image")
    assert caption.tokenizer.path is None and caption.generation.beam_size == 3
    train = config.train
    assert (train.optimizer.name, train.optimizer.betas, train.grad_clip) == ("adamw", (0.9, 0.98), 1.0)
    assert (train.scheduler.name, train.scheduler.warmup_steps, train.monitor) == ("cosine", 2000, "validation.caption.cider")


@pytest.mark.slow
def test_the_recipe_learns_to_caption_generated_shapes(tmp_path):
    result = run_cli("demo", "--recipe", "captioning", "--folder", tmp_path)
    trained = json.loads((tmp_path / "run" / "evaluation" / "test.json").read_text())
    untrained = api.evaluate_untrained(tmp_path / "run", "test")
    print(f"test BLEU-4 trained {trained['caption.bleu4']:.3f} vs untrained {untrained['caption.bleu4']:.3f}; "
          f"CIDEr-D {trained['caption.cider']:.3f} vs {untrained['caption.cider']:.3f}")
    assert trained["caption.bleu4"] >= 0.3 and untrained["caption.bleu4"] <= 0.05, result.stdout
    assert trained["caption.cider"] >= untrained["caption.cider"] + 1.0, result.stdout
    assert "generated captions" in result.stdout
