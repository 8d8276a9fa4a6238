"""Character-level DNA tokenizer compatible with Evo 2 (vortex ``CharLevelTokenizer(512)``).

Token ids are byte values: a character's id is its ASCII code (``A``=65, ``C``=67,
``G``=71, ``T``=84, ``N``=78). The vocabulary has 512 ids (only 0-255 can occur from
text). Two ids are special and never produced by a letter: ``eod_id == eos_id == 0``
(end of document) and ``pad_id == 1`` (right padding in batches).

Only IUPAC DNA letters ``ACGTNRYSWKMBDHV`` (either case) are accepted; anything else
raises ``ValueError`` naming the character and its 0-based position. Lower-case
(soft-masked) letters are upper-cased by default, as Evo 2 was trained on upper-case
sequence; pass ``uppercase=False`` to keep the lower-case byte values (97-122).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np
import torch

IUPAC_DNA = "ACGTNRYSWKMBDHV"
_INVALID = re.compile(f"[^{IUPAC_DNA}{IUPAC_DNA.lower()}]")
_COMPLEMENT = str.maketrans(
    "ACGTNRYSWKMBDHVacgtnryswkmbdhv", "TGCANYRSWMKVHDBtgcanyrswmkvhdb"
)


def validate_sequence(seq: str, name: str | None = None) -> None:
    """Raise ``ValueError`` at the first character that is not an IUPAC DNA letter."""
    if not isinstance(seq, str):
        raise TypeError(f"expected a str sequence, got {type(seq).__name__}")
    bad = _INVALID.search(seq)
    if bad is not None:
        where = f" in sequence {name!r}" if name is not None else ""
        raise ValueError(
            f"invalid character {bad.group()!r} at position {bad.start()}{where} "
            "(allowed: IUPAC DNA letters ACGTN RYSWKMBDHV)"
        )


def sequence_list(seqs, what: str = "seqs") -> list[str]:
    """``seqs`` as a list, refusing one str: iterating it would give one-base sequences."""
    if isinstance(seqs, (str, bytes)):
        raise TypeError(f"{what} must be a list of sequences, not one {type(seqs).__name__} "
                        f"(for one sequence pass [{what}])")
    return list(seqs)


def reverse_complement(seq: str) -> str:
    """Reverse complement of an IUPAC DNA sequence; case is kept (``"ACgN" -> "NcGT"``)."""
    validate_sequence(seq)
    return seq.translate(_COMPLEMENT)[::-1]


class CharLevelTokenizer:
    """Byte-value tokenizer with Evo 2's special ids (see the module docstring).

    Args:
        vocab_size: number of ids (512 for Evo 2).
        uppercase: upper-case input before tokenizing (soft-masked -> plain letters).
    """

    def __init__(self, vocab_size: int = 512, uppercase: bool = True) -> None:
        if vocab_size < 256:
            raise ValueError(f"vocab_size must be >= 256 to hold every byte, got {vocab_size}")
        self.name = "CharLevelTokenizer"
        self.vocab_size = vocab_size
        self.uppercase = uppercase
        self.eod_id = 0
        self.eos_id = 0
        self.pad_id = 1

    def tokenize(self, seq: str, name: str | None = None) -> list[int]:
        """Token ids of one sequence: a list of ``len(seq)`` ints.

        ``name`` (optional) is quoted in the error raised for an invalid character.
        """
        validate_sequence(seq, name)
        if self.uppercase:
            seq = seq.upper()
        return np.frombuffer(seq.encode("ascii"), dtype=np.uint8).tolist()

    def detokenize(self, ids: Iterable[int] | torch.Tensor | np.ndarray) -> str:
        """Text of a sequence of ids (list, 1-D array or tensor); pad and eod ids are dropped."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        out = []
        for t in ids:
            t = int(t)
            if t in (self.pad_id, self.eod_id):
                continue
            if not 0 <= t < self.vocab_size:
                raise ValueError(f"token id {t} outside the vocabulary [0, {self.vocab_size})")
            out.append(chr(t))
        return "".join(out)

    def encode_batch(
        self,
        seqs: Sequence[str],
        pad_to: int | None = None,
        names: Sequence[str] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokenize and right-pad a batch.

        Args:
            seqs: B sequences.
            pad_to: pad every row to this length L (must be >= the longest sequence);
                default: L = the longest sequence.
            names: optional names used in error messages (default: ``"#<index>"``).

        Returns:
            ``input_ids`` LongTensor (B, L), padded with ``pad_id`` on the right, and
            ``lengths`` LongTensor (B,) of true sequence lengths.
        """
        seqs = sequence_list(seqs)
        if names is not None and len(names) != len(seqs):
            raise ValueError(f"got {len(names)} names for {len(seqs)} sequences")
        rows = [
            self.tokenize(s, name=names[i] if names is not None else f"#{i}")
            for i, s in enumerate(seqs)
        ]
        lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
        longest = int(lengths.max()) if rows else 0
        if pad_to is not None and pad_to < longest:
            raise ValueError(f"pad_to={pad_to} is shorter than the longest sequence ({longest})")
        L = longest if pad_to is None else pad_to
        input_ids = torch.full((len(rows), L), self.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            if r:
                input_ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return input_ids, lengths

    @staticmethod
    def attention_mask(lengths: torch.Tensor, L: int) -> torch.Tensor:
        """BoolTensor (B, L): True at real tokens (column < length), False at padding."""
        lengths = torch.as_tensor(lengths, dtype=torch.long)
        return torch.arange(L, device=lengths.device)[None, :] < lengths[:, None]
