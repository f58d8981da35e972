"""The caption decoder and generation: causality, masks, greedy vs beam search on random and hand-made step functions."""

from __future__ import annotations

import pytest
import torch

from plait.models.search import beam_search, generate, greedy
from plait.models.decoder import CaptionDecoder

PAD, BOS, EOS = 0, 1, 2
A, B, C, D, E = 3, 4, 5, 6, 7  # plain tokens of the hand-made tables


def tiny_decoder(seed: int, vocab: int = 12, max_length: int = 8, dim: int = 16) -> CaptionDecoder:
    torch.manual_seed(seed)
    return CaptionDecoder(vocab, dim, heads=2, layers=2, ff_dim=32, max_length=max_length, dropout=0.1, pad_id=PAD).eval()


def table_step(table: dict[tuple[int, ...], dict[int, float]], vocab: int = 8):
    """A step whose next-token distribution depends only on the tokens generated so far: `table[prefix]` gives the
    probabilities (any token it leaves out gets 1e-6), a prefix it does not list is uniform."""
    def step(memory, memory_padding, tokens):
        logits = torch.zeros(tokens.size(0), tokens.size(1), vocab)
        for row, prefix in enumerate(tokens[:, 1:].tolist()):
            if tuple(prefix) in table:
                probs = torch.full((vocab,), 1e-6)
                for token, p in table[tuple(prefix)].items():
                    probs[token] = p
                logits[row, -1] = probs.log()
        return logits
    return step


def random_table_step(seed: int, rows: int, vocab: int, max_length: int):
    """Random logits from (row, position) and the previous token; the row is read from the memory (which carries
    it, so beam search's repeated memory still finds it). Rows 0, 3, 6, ... end at once, rows 1, 4, 7, ... never end."""
    g = torch.Generator().manual_seed(seed)
    by_position = 2 * torch.randn(rows, max_length, vocab, generator=g)
    by_previous = torch.randn(vocab, vocab, generator=g)

    def step(memory, memory_padding, tokens):
        row = memory[:, 0, 0].long()
        logits = by_position[row, tokens.size(1) - 1] + by_previous[tokens[:, -1]]
        logits[row % 3 == 0, EOS] += 50.0
        logits[row % 3 == 1, EOS] = float("-inf")
        return logits[:, None].expand(-1, tokens.size(1), -1)
    return step


def steered(decoder: CaptionDecoder):
    """A random decoder made to end at once where memory[:, 0, 0] > 1 and never where it is < -1."""
    def step(memory, memory_padding, tokens):
        logits = decoder(memory, memory_padding, tokens).clone()
        logits[memory[:, 0, 0] > 1, :, EOS] += 30.0
        logits[memory[:, 0, 0] < -1, :, EOS] = float("-inf")
        return logits
    return step


def row_memory(rows: int) -> torch.Tensor:
    return torch.arange(rows, dtype=torch.float)[:, None, None].expand(rows, 2, 4).contiguous()


# --- the decoder ---------------------------------------------------------------------------------------------------

def test_decoder_shape_and_tied_output():
    decoder = tiny_decoder(0)
    logits = decoder(torch.randn(3, 5, 16), None, torch.randint(0, 12, (3, 6)))
    assert logits.shape == (3, 6, 12) and torch.isfinite(logits).all()
    assert decoder.output.weight is decoder.embed.weight


def test_decoder_is_causal():
    decoder, memory = tiny_decoder(1), torch.randn(2, 4, 16)
    tokens = torch.randint(3, 12, (2, 7))
    changed = tokens.clone()
    changed[:, 4:] = torch.randint(3, 12, (2, 3))
    before, after = decoder(memory, None, tokens), decoder(memory, None, changed)
    torch.testing.assert_close(before[:, :4], after[:, :4])
    assert not torch.allclose(before[:, 4:], after[:, 4:])


def test_decoder_ignores_padded_memory():
    decoder, memory, tokens = tiny_decoder(2), torch.randn(2, 5, 16), torch.randint(3, 12, (2, 4))
    padding = torch.tensor([[False, False, False, True, True], [False, True, False, False, False]])
    changed = memory.clone()
    changed[padding] = torch.randn(3, 16)
    torch.testing.assert_close(decoder(memory, padding, tokens), decoder(changed, padding, tokens))
    assert not torch.allclose(decoder(memory, None, tokens), decoder(changed, None, tokens))


def test_decoder_padding_rows_are_finite():
    decoder = tiny_decoder(3)
    tokens = torch.tensor([[BOS, 5, 6, PAD, PAD], [PAD] * 5])
    assert torch.isfinite(decoder(torch.randn(2, 3, 16), None, tokens)).all()


def test_decoder_rejects_too_long_and_empty_memory():
    decoder = tiny_decoder(4, max_length=8)
    decoder(torch.randn(1, 3, 16), None, torch.full((1, 8), BOS))  # exactly max_length is fine
    with pytest.raises(ValueError, match="max_length"):
        decoder(torch.randn(1, 3, 16), None, torch.full((1, 9), BOS))
    with pytest.raises(ValueError, match="all padding"):
        decoder(torch.randn(2, 3, 16), torch.tensor([[False, True, True], [True, True, True]]), torch.full((2, 2), BOS))


# --- beam search of width 1 is greedy ------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(8))
def test_beam_one_is_greedy_on_random_decoders(seed):
    decoder = tiny_decoder(seed, max_length=7)
    torch.manual_seed(100 + seed)
    memory = torch.randn(12, 5, 16)
    memory[:4, 0, 0], memory[4:8, 0, 0] = 2.0, -2.0  # four rows end at once, four never end
    padding = torch.rand(12, 5) < 0.3
    padding[:, 0] = False
    step = steered(decoder)
    expected = greedy(step, memory, padding, BOS, EOS, 7)
    assert all(row == [] for row in expected[:4]) and all(len(row) == 7 for row in expected[4:8])
    for penalty in (0.0, 0.5, 1.0, 2.0, -1.0):
        assert beam_search(step, memory, padding, BOS, EOS, 7, beam_size=1, length_penalty=penalty) == expected
        assert generate(step, memory, padding, BOS, EOS, 7, 1, penalty) == expected


@pytest.mark.parametrize("seed", range(20))
def test_beam_one_is_greedy_on_random_tables(seed):
    rows, vocab, max_length = 9, 6 + seed % 5, 3 + seed % 6
    step = random_table_step(seed, rows, vocab, max_length)
    expected = greedy(step, row_memory(rows), None, BOS, EOS, max_length)
    assert expected[0] == [] and len(expected[1]) == max_length
    for penalty in (0.0, 0.7, 1.0, 3.0):
        assert beam_search(step, row_memory(rows), None, BOS, EOS, max_length, 1, penalty) == expected


# --- beam search on hand-made tables -------------------------------------------------------------------------------

BETTER_SECOND = {(): {A: 0.6, B: 0.4}, (A,): {EOS: 0.3, C: 0.25, D: 0.25, E: 0.2}, (B,): {EOS: 0.9, C: 0.1}}


@pytest.mark.parametrize("beam_size", [2, 3])
def test_beam_finds_the_more_probable_caption(beam_size):
    # greedy: A (0.6) then the end (0.3): 0.18; B (0.4) then the end (0.9) is 0.36
    step = table_step(BETTER_SECOND)
    assert greedy(step, row_memory(1), None, BOS, EOS, 5) == [[A]]
    assert beam_search(step, row_memory(1), None, BOS, EOS, 5, beam_size) == [[B]]
    assert generate(step, row_memory(1), None, BOS, EOS, 5, beam_size) == [[B]]


def test_length_penalty_prefers_the_longer_caption():
    # finished: [] at log 0.5 (length 1) and [A] at log(0.4 * 0.9) (length 2)
    step = table_step({(): {EOS: 0.5, A: 0.4, B: 0.1}, (A,): {EOS: 0.9, C: 0.1}, (B,): {EOS: 0.5, C: 0.5}})
    assert beam_search(step, row_memory(1), None, BOS, EOS, 5, 2, length_penalty=0.0) == [[]]
    assert beam_search(step, row_memory(1), None, BOS, EOS, 5, 2, length_penalty=1.0) == [[A]]
    assert beam_search(step, row_memory(1), None, BOS, EOS, 5, 2, length_penalty=2.0) == [[A]]


def test_beams_start_distinct():
    seen = []
    table = table_step({(): {A: 0.5, B: 0.3, C: 0.2}})

    def step(memory, memory_padding, tokens):
        seen.append(tokens.clone())
        return table(memory, memory_padding, tokens)
    beam_search(step, row_memory(2), None, BOS, EOS, 4, 3)
    assert seen[0].tolist() == [[BOS]] * 6
    assert seen[1][:, 1].tolist() == [A, B, C, A, B, C]  # per row, the three best first tokens, not one three times


def test_unfinished_beams_are_finalised_at_max_length():
    step = table_step({(): {A: 0.6, B: 0.4}, (A,): {C: 1.0}, (B,): {C: 1.0}, (A, C): {D: 1.0}, (B, C): {D: 1.0}})
    assert beam_search(step, row_memory(1), None, BOS, EOS, 3, 2) == [[A, C, D]]
    assert greedy(step, row_memory(1), None, BOS, EOS, 3) == [[A, C, D]]


@pytest.mark.parametrize("beam_size", [1, 2, 4])
def test_results_are_well_formed(beam_size):
    vocab = 12
    for seed in range(4):
        decoder, max_length = tiny_decoder(seed, vocab=vocab, max_length=6), 6  # the decoder's positions end at 6 too
        torch.manual_seed(seed)
        bos_favoured = lambda memory, padding, tokens: decoder(memory, padding, tokens) + 20 * torch.nn.functional.one_hot(
            torch.tensor(BOS), vocab)
        for step in (decoder, steered(decoder), bos_favoured):
            for row in generate(step, torch.randn(10, 3, 16), None, BOS, EOS, max_length, beam_size, 1.0):
                assert len(row) <= max_length and BOS not in row and EOS not in row
                assert all(0 <= token < vocab for token in row)


def test_no_rows_and_bad_arguments():
    step = table_step({})
    assert greedy(step, torch.zeros(0, 2, 4), None, BOS, EOS, 3) == []
    assert beam_search(step, torch.zeros(0, 2, 4), None, BOS, EOS, 3, 2) == []
    with pytest.raises(ValueError):
        generate(step, row_memory(1), None, BOS, EOS, 0)
    with pytest.raises(ValueError):
        generate(step, row_memory(1), None, BOS, EOS, 3, beam_size=0)


# --- a decoder that learns ------------------------------------------------------------------------------------------

def test_decoder_learns_to_copy():
    """Teacher forcing on a copy task (the memory is the embedded target): greedy then writes every target back."""
    torch.manual_seed(0)
    vocab, length, dim = 12, 5, 32
    targets = torch.randint(3, vocab, (16, length))
    decoder = CaptionDecoder(vocab, dim, heads=4, layers=2, ff_dim=64, max_length=length + 1, dropout=0.0, pad_id=PAD)
    source = torch.nn.Embedding(vocab, dim)
    source_position = torch.nn.Parameter(0.1 * torch.randn(length, dim))
    optimizer = torch.optim.Adam([*decoder.parameters(), *source.parameters(), source_position], lr=3e-3)
    inputs = torch.cat([torch.full((16, 1), BOS), targets], dim=1)
    labels = torch.cat([targets, torch.full((16, 1), EOS)], dim=1)
    for _ in range(150):
        logits = decoder(source(targets) + source_position, None, inputs)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    decoder.eval()
    memory = (source(targets) + source_position).detach()
    assert greedy(decoder, memory, None, BOS, EOS, length + 1) == targets.tolist()
    assert beam_search(decoder, memory, None, BOS, EOS, length + 1, 3) == targets.tolist()
