"""Groups of near-duplicate images from 64-bit perceptual hashes, found without comparing every pair.

Two hashes within ``max_distance`` differing bits agree exactly on at least one of ``max_distance + 1``
disjoint bands of bits (pigeonhole), so only items that share a band value are compared: sort by each band,
compare neighbours within runs of equal bands, keep the pairs whose Hamming distance is small enough, and join
them into groups. All in NumPy, so 100,000 hashes take well under a second.
"""

from __future__ import annotations

import numpy as np

MAX_RUN = 64
"""Neighbours compared within one run of equal band values: a run longer than this (thousands of blank images
sharing a band) is only partly searched, so the cost stays bounded."""


def _bands(max_distance: int) -> list[tuple[int, int]]:
    count = max_distance + 1
    edges = [round(i * 64 / count) for i in range(count + 1)]
    return list(zip(edges[:-1], edges[1:]))


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Differing bits of pairs of uint64 hashes."""
    xor = np.bitwise_xor(a.astype(np.uint64), b.astype(np.uint64))
    if hasattr(np, "bitwise_count"):  # NumPy 2
        return np.bitwise_count(xor).astype(np.int64)
    return np.unpackbits(xor.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)


def candidate_pairs(hashes: np.ndarray, max_distance: int) -> np.ndarray:
    """Pairs (i, j), i < j, of positions whose hashes differ in at most ``max_distance`` bits."""
    hashes = np.asarray(hashes, np.uint64)
    found = []
    for low, high in _bands(max_distance):
        band = (hashes >> np.uint64(low)) & np.uint64((1 << (high - low)) - 1)
        order = np.argsort(band, kind="stable")
        sorted_band = band[order]
        for offset in range(1, min(MAX_RUN, len(order))):
            same = np.flatnonzero(sorted_band[offset:] == sorted_band[:-offset])
            if not len(same):
                break
            first, second = order[same], order[same + offset]
            close = hamming(hashes[first], hashes[second]) <= max_distance
            found.append(np.minimum(first, second)[close] * len(hashes) + np.maximum(first, second)[close])
    if not found:
        return np.zeros((0, 2), np.int64)
    keys = np.unique(np.concatenate(found))  # a pair found in several bands counts once
    return np.stack([keys // len(hashes), keys % len(hashes)], axis=1).astype(np.int64)


def _components(count: int, pairs: np.ndarray) -> np.ndarray:
    """Connected-component label (its smallest member) of every position, by min-label propagation."""
    labels = np.arange(count)
    first, second = pairs[:, 0], pairs[:, 1]
    while True:
        lowest = np.minimum(labels[first], labels[second])
        updated = labels.copy()
        np.minimum.at(updated, first, lowest)
        np.minimum.at(updated, second, lowest)
        updated = updated[updated]  # pointer jumping: follow each label to its own label
        if np.array_equal(updated, labels):
            return labels
        labels = updated


def duplicate_groups(hashes: np.ndarray, max_distance: int) -> list[np.ndarray]:
    """Groups (arrays of positions, two or more each) of near-duplicate hashes, largest group first."""
    distinct, inverse = np.unique(np.asarray(hashes, np.uint64), return_inverse=True)
    inverse = inverse.ravel()
    # Identical hashes are one node, so thousands of copies of one picture cost nothing extra.
    labels = _components(len(distinct), candidate_pairs(distinct, max_distance))[inverse]
    order = np.argsort(labels, kind="stable")
    runs = np.split(order, np.flatnonzero(np.diff(labels[order])) + 1) if len(order) else []
    groups = [run for run in runs if len(run) > 1]
    return sorted(groups, key=lambda g: (-len(g), int(g[0])))
