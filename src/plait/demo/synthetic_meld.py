"""Generated conversations in MELD's published layout: `{train,dev,test}_sent_emo.csv` plus one mp4 per utterance
(a video track and an audio track) in `train_splits/`, `dev_splits_complete/` and `output_repeated_splits_test/`.

Each utterance's emotion depends jointly on three cues, one per modality:
- the words: the line carries a word from one of two word lists;
- the sound: a low or a high voice-like tone (random pitch within its band, vibrato, noise);
- the motion: a bright patch moving across the frame left-right or up-down (a single frame cannot tell which).
The 8 combinations map onto MELD's 7 emotions (two of them onto `neutral`, MELD's largest class), and sentiment
follows from emotion as in MELD. Any one modality alone leaves 4 combinations open (at best about 3/8 of the
emotions right); all three together determine the emotion.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from plait.data.meld import CLIP_FOLDERS, CSV_NAMES
from plait.demo.synthetic_media import write_clip

EMOTIONS = ["anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise"]
SENTIMENT = {"anger": "negative", "disgust": "negative", "fear": "negative", "sadness": "negative",
             "joy": "positive", "surprise": "positive", "neutral": "neutral"}
# (word cue, sound cue, motion cue) → emotion
EMOTION_OF = {
    (0, 0, 0): "anger", (0, 0, 1): "disgust", (0, 1, 0): "fear", (0, 1, 1): "joy",
    (1, 0, 0): "sadness", (1, 0, 1): "surprise", (1, 1, 0): "neutral", (1, 1, 1): "neutral",
}
WORDS = [["seriously", "honestly", "whatever", "again"], ["wow", "really", "tonight", "okay"]]
SPEAKERS = ["Chandler", "Joey", "Monica", "Phoebe", "Rachel", "Ross"]
OPENINGS = ["You know what,", "Oh my God,", "Listen,", "Hey,", "Well,", "So"]
CLOSINGS = ["I can’t believe it.", "that’s what I’m saying…", "let’s go — now.", "it’s fine.", "right?", "okay…"]


def single_cue_ceiling() -> float:
    """The best expected emotion accuracy of any model that sees one modality: for each value of one cue, guess
    the most common emotion among the 4 combinations it leaves open (cues are uniform and independent)."""
    best = 0.0
    for cue in range(3):
        correct = 0.0
        for value in (0, 1):
            open_emotions = [emotion for cues, emotion in EMOTION_OF.items() if cues[cue] == value]
            correct += max(open_emotions.count(e) for e in open_emotions) / len(open_emotions) / 2
        best = max(best, correct)
    return best


def utterance(word_cue: int, rng: np.random.Generator) -> str:
    """A short line in MELD's style, typographic punctuation included."""
    return f"{rng.choice(OPENINGS)} {rng.choice(WORDS[word_cue])} {rng.choice(CLOSINGS)}"


def moving_patch(horizontal: bool, rng: np.random.Generator, frames: int, size: int) -> np.ndarray:
    """[frames, size, size, 3] uint8: a bright square sweeping across a noisy background along one axis."""
    background = rng.integers(0, 80, 3)
    video = np.empty((frames, size, size, 3), dtype=np.uint8)
    patch = max(2, size // 5)
    lane = int(rng.integers(0, size - patch))
    start, end = (0, size - patch) if rng.random() < 0.5 else (size - patch, 0)  # either direction along the axis
    colour = rng.integers(170, 256, 3)
    for t in range(frames):
        along = int(round(start + (end - start) * t / max(frames - 1, 1)))
        frame = np.clip(background + rng.normal(0, 12, (size, size, 3)), 0, 255)
        y, x = (lane, along) if horizontal else (along, lane)
        frame[y : y + patch, x : x + patch] = colour
        video[t] = frame.astype(np.uint8)
    return video


def voice(high: bool, rng: np.random.Generator, seconds: float, sample_rate: int) -> np.ndarray:
    """A voice-like tone: pitch in a low (120–220 Hz) or high (600–900 Hz) band, vibrato, harmonics, noise."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    pitch = rng.uniform(600, 900) if high else rng.uniform(120, 220)
    phase = 2 * np.pi * pitch * t + 0.8 * np.sin(2 * np.pi * rng.uniform(3, 6) * t)
    tone = np.sin(phase) + 0.4 * np.sin(2 * phase) + 0.2 * np.sin(3 * phase)
    envelope = np.clip(np.minimum(t, t[-1] - t) * 20, 0, 1)  # fade in and out
    signal = 0.25 * envelope * tone + rng.normal(0, 0.02, t.size)
    return signal.astype(np.float32)


def timestamp(seconds: float) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{int(hours):02d}:{int(minutes):02d}:{secs:06.3f}".replace(".", ",")


def make_meld(folder: str | Path, dialogues: tuple[int, int, int] = (40, 8, 8), seed: int = 0, size: int = 32,
              frames: int = 8, fps: int = 8, sample_rate: int = 16000) -> Path:
    """Write the three CSVs and their clips (2–5 utterances per dialogue); return the folder."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    seconds = frames / fps
    for split, count in zip(CSV_NAMES, dialogues):
        clips = folder / CLIP_FOLDERS[split][0]
        clips.mkdir(parents=True, exist_ok=True)
        records = []
        for dialogue in range(count):
            start = float(rng.uniform(0, 1200))
            for turn in range(int(rng.integers(2, 6))):
                cues = tuple(int(v) for v in rng.integers(0, 2, 3))
                emotion = EMOTION_OF[cues]
                video = moving_patch(bool(cues[2]), rng, frames, size)
                write_clip(clips / f"dia{dialogue}_utt{turn}.mp4", video, fps, voice(bool(cues[1]), rng, seconds, sample_rate), sample_rate)
                records.append({
                    "Sr No.": len(records) + 1, "Utterance": utterance(cues[0], rng), "Speaker": rng.choice(SPEAKERS),
                    "Emotion": emotion, "Sentiment": SENTIMENT[emotion], "Dialogue_ID": dialogue, "Utterance_ID": turn,
                    "Season": int(rng.integers(1, 10)), "Episode": int(rng.integers(1, 25)),
                    "StartTime": timestamp(start), "EndTime": timestamp(start + seconds),
                })
                start += seconds + float(rng.uniform(0.2, 2.0))
        pd.DataFrame(records).to_csv(folder / CSV_NAMES[split], index=False, encoding="utf-8")
    return folder
