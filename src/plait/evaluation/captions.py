"""Caption metrics: BLEU-1..4 and CIDEr-D as the COCO caption evaluation (coco-caption / pycocoevalcap) computes
them, in plain Python (no Java), plus the file of sample captions written next to their references.

Each hypothesis is scored against all reference captions of its image. The numbers match pycocoevalcap 1.2's
`Bleu` and `Cider` scorers on the same tokens (checked to 1e-6, and pinned in tests/test_caption_metrics.py).
The tokens can differ slightly from coco-caption's, whose Java PTB tokenizer `normalise` stands in for.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import Counter
from pathlib import Path

from plait.errors import PlaitError
from plait.files import write_atomic

MAX_N = 4  # n-grams of 1..4 words, for both metrics
CIDER_SIGMA = 6.0  # width of CIDEr-D's Gaussian length penalty
# coco-caption's BLEU adds these so that a precision of 0 gives a tiny score instead of log(0); kept to match it
TINY, SMALL = 1e-15, 1e-9

# a number such as 3.5, or a word whose inner apostrophes and hyphens stay ("man's", "black-and-white")
_TOKEN = re.compile(r"\d+(?:[.,]\d+)+|[^\W_]+(?:[-'][^\W_]+)*")


def normalise(text: str) -> list[str]:
    """Lowercase words without punctuation: the stand-in for coco-caption's PTB tokenizer + punctuation removal.

    Unlike PTB it keeps clitics on their word ("man's" is one token, PTB makes it "man 's"), so scores on
    captions with possessives or contractions can differ a little from the official ones."""
    return _TOKEN.findall(text.lower().replace("\u2019", "'"))


def _ngrams(words: list[str]) -> Counter:
    """Counts of every 1..4-gram of `words`, keyed by tuple."""
    return Counter(tuple(words[i : i + n]) for n in range(1, MAX_N + 1) for i in range(len(words) - n + 1))


def _check(hypotheses: list[str], references: list[list[str]]) -> None:
    if len(hypotheses) != len(references):
        raise PlaitError(f"{len(hypotheses)} captions but {len(references)} lists of references: they must pair up")
    for index, refs in enumerate(references):
        if not refs:
            raise PlaitError(f"caption {index} has no reference captions to be scored against")


def bleu(hypotheses: list[str], references: list[list[str]]) -> dict[str, float]:
    """Corpus BLEU-1..4: clipped n-gram matches and n-gram counts summed over all images, BLEU-n the geometric mean
    of precisions 1..n, times the brevity penalty of the total hypothesis length against the total of each
    image's reference length closest to its hypothesis (the shorter on a tie), as coco-caption does."""
    _check(hypotheses, references)
    matches, totals = [0] * MAX_N, [0] * MAX_N
    hypothesis_length = reference_length = 0
    for hypothesis, refs in zip(hypotheses, references):
        words = normalise(hypothesis)
        ref_words = [normalise(ref) for ref in refs]
        most = Counter()  # each n-gram counts at most as often as in the reference holding it most often
        for ref in ref_words:
            most |= _ngrams(ref)
        for gram, count in _ngrams(words).items():
            matches[len(gram) - 1] += min(count, most[gram])
        for n in range(1, MAX_N + 1):
            totals[n - 1] += max(0, len(words) - n + 1)
        hypothesis_length += len(words)
        reference_length += min((abs(len(ref) - len(words)), len(ref)) for ref in ref_words)[1]

    ratio = (hypothesis_length + TINY) / (reference_length + SMALL)
    penalty = math.exp(1 - 1 / ratio) if ratio < 1 else 1.0
    scores, product = {}, 1.0
    for n in range(1, MAX_N + 1):
        product *= (matches[n - 1] + TINY) / (totals[n - 1] + SMALL)
        scores[f"bleu{n}"] = product ** (1 / n) * penalty
    return scores


def cider_d(hypotheses: list[str], references: list[list[str]]) -> float:
    """CIDEr-D (Vedantam et al. 2015) as coco-caption's `Cider` computes it, ×10 included.

    Each caption becomes tf-idf vectors over its 1..4-grams, idf = log(images) - log(images whose references hold
    the n-gram), counted over the evaluated set only. Per n, the hypothesis scores against each reference the
    cosine-like similarity with the hypothesis weights clipped at the reference's (no gain from repeating an
    n-gram), times exp(-Δ²/2σ²) for the length difference Δ; averaged over references and n, ×10, over images.
    One image alone scores 0: every n-gram then has idf 0."""
    _check(hypotheses, references)
    if not hypotheses:
        return 0.0
    hypothesis_grams = [_ngrams(normalise(hypothesis)) for hypothesis in hypotheses]
    reference_grams = [[_ngrams(normalise(ref)) for ref in refs] for refs in references]
    document_frequency = Counter(gram for refs in reference_grams for gram in set().union(*refs))
    log_images = math.log(len(hypotheses))

    def vectors(counts: Counter) -> tuple[list[dict], list[float], int]:
        """tf-idf weights per n, their norms, and the length coco-caption uses: the number of bigrams."""
        weights = [{} for _ in range(MAX_N)]
        for gram, count in counts.items():
            weights[len(gram) - 1][gram] = count * (log_images - math.log(max(1.0, document_frequency[gram])))
        norms = [math.sqrt(sum(w * w for w in per_n.values())) for per_n in weights]
        return weights, norms, sum(count for gram, count in counts.items() if len(gram) == 2)

    scores = []
    for hypothesis, refs in zip(hypothesis_grams, reference_grams):
        weights, norms, length = vectors(hypothesis)
        total = 0.0
        for ref in refs:
            ref_weights, ref_norms, ref_length = vectors(ref)
            penalty = math.exp(-((length - ref_length) ** 2) / (2 * CIDER_SIGMA**2))
            for n in range(MAX_N):
                theirs = ref_weights[n]
                overlap = sum(min(w, theirs[gram]) * theirs[gram] for gram, w in weights[n].items() if gram in theirs)
                if norms[n] and ref_norms[n]:
                    overlap /= norms[n] * ref_norms[n]
                total += overlap * penalty
        scores.append(total / MAX_N / len(refs) * 10.0)
    return sum(scores) / len(scores)


def caption_metrics(hypotheses: list[str], references: list[list[str]]) -> dict[str, float]:
    """`bleu1`..`bleu4` and `cider` (CIDEr-D) of the captions against their references; {} when there are none."""
    if not hypotheses:
        return {}
    return {**bleu(hypotheses, references), "cider": cider_d(hypotheses, references)}


def write_samples(path: str | os.PathLike, images: list[str], hypotheses: list[str], references: list[list[str]],
                  limit: int = 50) -> Path:
    """The first `limit` generated captions next to their references, as a JSON list of {image, caption,
    references}: the file to read when the scores alone do not say what the model writes."""
    path = Path(path)
    samples = [{"image": image, "caption": caption, "references": list(refs)}
               for image, caption, refs in list(zip(images, hypotheses, references))[:limit]]
    write_atomic(path, json.dumps(samples, indent=2, ensure_ascii=False))
    return path
