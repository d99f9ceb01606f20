"""Vocabularies: the endpoints, personas and status codes a learner has seen, in order.

A name's code is its position, used in every array dim of that name; names join in order of
first appearance and never leave (a reset keeps them), so codes are stable for the learner's
life and merging two learners is a remap of one's codes into the other's.
"""

from __future__ import annotations

import types
from collections.abc import Hashable, Iterable, Mapping

import numpy as np
import pandas as pd


class Vocabulary:
    """Names in order of first appearance, with their codes."""

    def __init__(self, names: Iterable[Hashable] = ()):
        self.names: list = []
        self._codes: dict = {}
        self.add(names)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self._codes

    @property
    def codes(self) -> Mapping:
        """Name → code (a read-only view)."""
        return types.MappingProxyType(self._codes)

    def missing(self, names: Iterable[Hashable]) -> list:
        """The names not yet in the vocabulary, in order, without repeats."""
        return [n for n in dict.fromkeys(names) if n not in self._codes]

    def add(self, names: Iterable[Hashable]) -> int:
        """Append the new names; returns how many joined."""
        new = self.missing(names)
        for n in new:
            self._codes[n] = len(self.names)
            self.names.append(n)
        return len(new)

    def plan(self, values: np.ndarray) -> tuple[np.ndarray, list, np.ndarray]:
        """Codes ``values`` will have, without adding anything: ``(codes, new, first)`` where
        ``new`` are the unknown names in order of first appearance (they get the next codes)
        and ``first`` the index in ``values`` where each first appears."""
        codes, uniq = pd.factorize(values)
        names = uniq.tolist()
        mapped = np.fromiter((self._codes.get(u, -1) for u in names), dtype=np.int64,
                             count=len(names))
        fresh = np.flatnonzero(mapped < 0)
        mapped[fresh] = len(self.names) + np.arange(len(fresh))
        first = np.unique(codes, return_index=True)[1]  # factorize codes follow first sight
        return mapped[codes], [names[i] for i in fresh], first[fresh]

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Codes of ``values`` (all must be known: :meth:`add` them first)."""
        codes, uniq = pd.factorize(values)
        mapped = np.fromiter((self._codes[u] for u in uniq.tolist()), dtype=np.int64,
                             count=len(uniq))
        return mapped[codes]

    def codes_of(self, names: Iterable[Hashable]) -> np.ndarray:
        """Code of each name, -1 for names not in the vocabulary."""
        return np.array([self._codes.get(n, -1) for n in names], dtype=np.int64)

    def remap(self, other: Vocabulary) -> np.ndarray:
        """Codes in this vocabulary of every name of ``other`` (all must be known)."""
        return np.array([self._codes[n] for n in other.names], dtype=np.int64)
