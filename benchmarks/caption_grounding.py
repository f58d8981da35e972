"""Does the captioner look at the image? Trains the `grounding` demo (84 made-up object kinds, one to three photos
each, captions naming count, colour, kind and place; src/plait/demo/synthetic_grounding.py) and prints, on its
test split:

- CIDEr-D / BLEU-4 of the trained model against the caption of the nearest training image (by 16×16 pixels and by
  the trained image encoder) and the untrained model; the ratio of trained to the better baseline is the target;
- the share of test captions that name each attribute (count, colour, surface, shape, mark, place) right;
- how much the decoder relies on the image: its per-token loss with each image against the loss with another
  image of the split, the share of cross-attention that lands on the image's tokens (rather than the fused
  vector's one token), and teacher-forced next-word accuracy per word of the caption (count, colour, kind, ...).

    python benchmarks/caption_grounding.py [--folder DIR] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import defaultdict
from pathlib import Path

import torch

from plait.data.dataset import load_batch, prepare_inputs
from plait.demo.runner import run_demo
from plait.demo.synthetic_grounding import ATTRIBUTES, attributes
from plait.runs.run import Run


def recorded_cross_attention(model) -> list[torch.Tensor]:
    """Make every decoder layer's cross-attention keep its weights [N, T, L] (averaged over heads) in the list returned."""
    kept: list[torch.Tensor] = []
    for layer in model.heads["caption"].decoder.blocks.layers:
        attention = layer.multihead_attn
        plain = attention.forward

        def forward(*args, plain=plain, **kwargs):
            kwargs.update(need_weights=True, average_attn_weights=True)
            output, weights = plain(*args, **kwargs)
            kept.append(weights)
            return output, weights
        attention.forward = forward
    return kept


@torch.no_grad()
def reliance(run: Run, split_name: str, kept: list[torch.Tensor]) -> dict:
    """Loss with the true and with shifted images, attention share on image tokens (`kept`: what
    `recorded_cross_attention` records), per-word accuracy."""
    split = run.encode([split_name])[split_name]
    model, tasks, features = run.model.eval(), run.tasks, run.features
    nll = defaultdict(float)
    tokens = 0.0
    image_share, correct, seen = [], defaultdict(int), defaultdict(int)
    rows = torch.arange(len(split))
    batch = load_batch(split, rows, tasks, run.device)
    for name, order in (("true", rows), ("shuffled", rows.roll(1))):
        other = batch if name == "true" else load_batch(split, order, tasks, run.device)
        inputs = prepare_inputs(features, other["inputs"], training=False)
        kept.clear()
        logits = model(inputs, targets=batch["targets"])["caption"]
        labels = batch["targets"]["caption"]["labels"]
        reduced = tasks["caption"].reduce(logits, batch["targets"]["caption"])
        nll[name] = float(reduced["nll"].sum())
        tokens = float(reduced["tokens"].sum())
        if name == "true":
            image_share = [float(weights[..., 1:].sum(-1)[labels != -100].mean()) for weights in kept]
            hits = (logits.argmax(-1) == labels) & (labels != -100)
            for position in range(labels.shape[1]):
                correct[position] += int(hits[:, position].sum())
                seen[position] += int((labels[:, position] != -100).sum())
    return {"loss": nll["true"] / tokens, "loss_shuffled": nll["shuffled"] / tokens, "image_share": image_share,
            "accuracy_by_position": [correct[p] / seen[p] for p in sorted(seen) if seen[p]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--reliance-only", action="store_true", help="measure the run already in --folder, no training")
    args = parser.parse_args()
    folder = args.folder or Path(tempfile.mkdtemp(prefix="plait-grounding-"))
    if not args.reliance_only:
        print_scores(run_demo(folder, overrides=args.overrides, name="grounding"))
    print_attributes(folder / "run")
    print_reliance(Run.load(folder / "run"))


def print_attributes(run_dir: Path) -> None:
    """Share of the test images whose generated caption names each attribute as the reference does."""
    samples = json.loads((run_dir / "evaluation" / "test_caption_samples.json").read_text(encoding="utf-8"))
    said = [(attributes(sample["caption"]), attributes(sample["references"][0])) for sample in samples]
    right = {name: sum(bool(written) and written[name] == true[name] for written, true in said) / len(said)
             for name in ATTRIBUTES}
    print(f"test captions naming each attribute right ({len(said)} images): "
          + "  ".join(f"{name} {share:.2f}" for name, share in right.items()))


def print_scores(results: dict) -> None:
    cider = {name: values["caption.cider"] for name, values in results.items()}
    best_baseline = max(cider["baseline"], cider.get("nearest_features", 0.0))
    print(f"CIDEr-D trained {cider['trained']:.3f}  nearest by pixels {cider['baseline']:.3f}  nearest by encoder "
          f"{cider.get('nearest_features', float('nan')):.3f}  untrained {cider['untrained']:.3f}")
    print(f"trained / better baseline: {cider['trained'] / max(best_baseline, 1e-9):.2f}×")


def print_reliance(run: Run) -> None:
    kept = recorded_cross_attention(run.model)
    for split in ("train", "test"):
        found = reliance(run, split, kept)
        print(f"{split}: per-token loss {found['loss']:.3f} with its image, {found['loss_shuffled']:.3f} with another "
              f"image ({found['loss_shuffled'] / found['loss']:.2f}×); cross-attention share on image tokens per layer "
              + ", ".join(f"{share:.2f}" for share in found["image_share"]))
        print(f"{split}: teacher-forced accuracy by word position: "
              + " ".join(f"{accuracy:.2f}" for accuracy in found["accuracy_by_position"]))


if __name__ == "__main__":
    main()
