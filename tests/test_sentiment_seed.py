"""recipes/sentiment_video_audio_text_seed.yaml is the seed sentiment pipeline, parameter for parameter: with a BERT-base
model (bert-base-uncased's config, random weights) and R3D-18 (random weights), `plait summary` prints the six
trainable counts the pipeline's own train.py prints."""

import re
import shutil
from pathlib import Path

import pytest
import torch

from plait.pretrained import resolve_pretrained
from tests.conftest import ROOT, run_cli

RECIPE = ROOT / "recipes" / "sentiment_video_audio_text_seed.yaml"
SEED_PRINTOUT = {  # the pipeline's "Trainable parameters:" lines
    "encoder text": 98_432,  # Linear 768→128 on BERT's pooled output; BERT frozen
    "encoder video": 65_664,  # Linear 512→128 → ReLU → Dropout; R3D-18 frozen
    "encoder audio": 16_512,  # Linear 128→128 → ReLU → Dropout; its Conv1d/BatchNorm stack frozen
    "fusion": 99_072,  # Linear 384→256 → BatchNorm1d → ReLU → Dropout
    "head emotion": 16_903,  # Linear 256→64 → ReLU → Dropout → Linear 64→7
    "head sentiment": 16_643,  # Linear 256→64 → ReLU → Dropout → Linear 64→3
}


def bert_base(folder):
    """A local folder as bert-base-uncased's: its config (BertConfig's defaults are BERT-base), random weights, and the
    uncased WordPiece vocabulary, which the packaged MiniLM shares."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    BertModel(BertConfig()).save_pretrained(folder)
    minilm = Path(resolve_pretrained("minilm"))
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(minilm / name, folder / name)
    return folder


@pytest.mark.slow
def test_the_seed_recipe_prints_the_seed_pipelines_trainable_counts(tmp_path):
    from plait.demo.synthetic_meld import make_meld

    table = make_meld(tmp_path / "MELD.Raw", dialogues=(3, 1, 1), size=32)
    result = run_cli("summary", RECIPE, "--rows", "2", "--depth", "1", "--set", f"data.table={table}",
                     "--set", f"inputs.text.encoder.path={bert_base(tmp_path / 'bert-base-uncased')}")
    rows = dict(re.findall(r"│ ([a-z -]+?)\s+│\s+([\d,]+) │\s+[\d,]+ │", result.stdout))
    trainable = {component: int(count.replace(",", "")) for component, count in rows.items()}
    assert {component: trainable[component] for component in SEED_PRINTOUT} == SEED_PRINTOUT, result.stdout
    frozen = dict(re.findall(r"│ (encoder [a-z]+)\s+│\s+[\d,]+ │\s+([\d,]+) │", result.stdout))
    assert frozen["encoder video"] == "33,371,472"  # all of R3D-18 (torchvision's count, its unused fc included)
    assert int(frozen["encoder text"].replace(",", "")) == 109_482_240  # all of BERT-base, pooler included
