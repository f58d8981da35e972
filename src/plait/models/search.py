"""Writing token sequences with a decoder: greedy decoding and beam search.

Both take a `step(memory, memory_padding, tokens[N, t]) -> logits[N, t, vocab]` callable (a `CaptionDecoder` is one)
and re-run it on the whole prefix at every step; captions are short, so no key/value cache.

`max_length` counts generated tokens, the end token included: a row gets at most `max_length` tokens, and the decoder
never reads more than `max_length` positions (the start token and up to `max_length - 1` generated ones). Results are
each row's generated ids without the start token and without the end token.

The start token is never generated (it is not a word of any caption); beam search with `beam_size=1` gives exactly
greedy's result, whatever the length penalty.
"""

from __future__ import annotations

from typing import Callable

import torch

Step = Callable[[torch.Tensor, "torch.Tensor | None", torch.Tensor], torch.Tensor]
NEG_INF = float("-inf")


def generate(step: Step, memory: torch.Tensor, memory_padding: torch.Tensor | None, bos_id: int, eos_id: int,
             max_length: int, beam_size: int = 1, length_penalty: float = 1.0) -> list[list[int]]:
    """One entry point: greedy decoding when `beam_size` is 1, beam search otherwise."""
    if beam_size < 1:
        raise ValueError(f"beam_size must be at least 1, not {beam_size}")
    if beam_size == 1:
        return greedy(step, memory, memory_padding, bos_id, eos_id, max_length)
    return beam_search(step, memory, memory_padding, bos_id, eos_id, max_length, beam_size, length_penalty)


@torch.no_grad()
def greedy(step: Step, memory: torch.Tensor, memory_padding: torch.Tensor | None, bos_id: int, eos_id: int,
           max_length: int) -> list[list[int]]:
    """Each row takes its most likely next token until it writes the end token or has `max_length` tokens."""
    _check_length(max_length)
    if memory.size(0) == 0:
        return []
    tokens = torch.full((memory.size(0), 1), bos_id, dtype=torch.long, device=memory.device)
    ended = torch.zeros(memory.size(0), dtype=torch.bool, device=memory.device)
    for _ in range(max_length):
        chosen = next_log_probs(step, memory, memory_padding, tokens, bos_id, eos_id).argmax(dim=-1)  # ties: lowest id
        chosen = chosen.masked_fill(ended, eos_id)  # rows that have ended keep writing end tokens, cut off below
        tokens = torch.cat([tokens, chosen[:, None]], dim=1)
        ended |= chosen == eos_id
        if bool(ended.all()):
            break
    return [_until(row, eos_id) for row in tokens[:, 1:].tolist()]


@torch.no_grad()
def beam_search(step: Step, memory: torch.Tensor, memory_padding: torch.Tensor | None, bos_id: int, eos_id: int,
                max_length: int, beam_size: int, length_penalty: float = 1.0) -> list[list[int]]:
    """The best of each row's finished hypotheses, by (sum of log-probabilities) / length ** length_penalty.

    The length counts the end token (Hugging Face's convention). As in Hugging Face, an end token only finishes a
    hypothesis when it ranks among the row's top `beam_size` candidates of a step, and the beams stay `beam_size` live
    non-ending sequences. A row stops as soon as it has `beam_size` finished hypotheses (Hugging Face's
    `early_stopping=True`): simple, and what makes `beam_size=1` exactly greedy. At `max_length` the live beams of the
    rows still going are finished as they are.
    """
    _check_length(max_length)
    rows, k = memory.size(0), beam_size
    if rows == 0:
        return []
    memory = memory.repeat_interleave(k, dim=0)  # beam j of row i sits at i * k + j
    if memory_padding is not None:
        memory_padding = memory_padding.repeat_interleave(k, dim=0)
    tokens = torch.full((rows * k, 1), bos_id, dtype=torch.long, device=memory.device)
    scores = torch.full((rows, k), NEG_INF, device=memory.device)
    scores[:, 0] = 0.0  # only beam 0 is live at first, so step 1 does not expand k copies of one prefix
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(rows)]
    done = [False] * rows
    for length in range(1, max_length + 1):
        log_probs = next_log_probs(step, memory, memory_padding, tokens, bos_id, eos_id)
        # Each beam's best 2k tokens hold every candidate of the row's best 2k; sorted stably, ties go to the lower id.
        width = min(2 * k, log_probs.size(-1))
        top, ids = log_probs.sort(dim=-1, descending=True, stable=True)
        totals = (scores.view(-1, 1) + top[:, :width]).view(rows, k * width)
        totals, order = totals.sort(dim=-1, descending=True, stable=True)
        ids, totals, order = ids[:, :width].reshape(rows, k * width).tolist(), totals.tolist(), order.tolist()
        prefixes = tokens[:, 1:].tolist()
        beams: list[tuple[int, int, float]] = []  # the next step's beams: (source's index in the batch, token, score)
        for row in range(rows):
            live: list[tuple[int, int, float]] = []
            if not done[row]:
                for rank, (total, flat) in enumerate(zip(totals[row], order[row])):
                    if total == NEG_INF or len(live) == k:
                        break
                    beam, token = row * k + flat // width, ids[row][flat]
                    if token != eos_id:
                        live.append((beam, token, total))
                    elif rank < k:
                        finished[row].append((total / length ** length_penalty, prefixes[beam]))
                done[row] = len(finished[row]) >= k or not live
            if done[row]:
                live = []
            beams += live + [(row * k, eos_id, NEG_INF)] * (k - len(live))  # dead beams: never expanded again
        sources, chosen, kept = zip(*beams)
        tokens = torch.cat([tokens[list(sources)], torch.tensor(chosen, device=tokens.device)[:, None]], dim=1)
        scores = torch.tensor(kept, device=scores.device).view(rows, k)
        if all(done):
            break
    prefixes, last = tokens[:, 1:].tolist(), scores.tolist()
    for row in range(rows):
        if not done[row]:  # reached max_length: its live beams are what it has
            finished[row] += [(total / max_length ** length_penalty, prefixes[row * k + j])
                              for j, total in enumerate(last[row]) if total != NEG_INF]
    return [max(hypotheses, key=lambda h: h[0])[1] if hypotheses else [] for hypotheses in finished]


def next_log_probs(step: Step, memory: torch.Tensor, memory_padding: torch.Tensor | None, tokens: torch.Tensor,
                   bos_id: int, eos_id: int) -> torch.Tensor:
    """Log-probabilities [N, vocab] of the token after `tokens` [N, t]; the start token gets none (unless it doubles
    as the end token)."""
    logits = step(memory, memory_padding, tokens)[:, -1].float()
    if bos_id != eos_id:
        logits = logits.index_fill(-1, torch.tensor([bos_id], device=logits.device), NEG_INF)
    return torch.log_softmax(logits, dim=-1)


def _check_length(max_length: int) -> None:
    if max_length < 1:
        raise ValueError(f"max_length must be at least 1, not {max_length}")


def _until(ids: list[int], eos_id: int) -> list[int]:
    return ids[:ids.index(eos_id)] if eos_id in ids else ids
