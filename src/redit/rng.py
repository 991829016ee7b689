"""Counter-based seeding: every noise draw is a pure function of (seed, key).

A key names *where* a draw happens (step, call within the step, rank, reward function, ...). Because no
generator state is carried between draws, the same seed always reproduces the same noise, separate ranks never
share draws, and a run resumed from a checkpoint draws exactly what the uninterrupted run would have.
"""

from __future__ import annotations

import hashlib
import struct

import torch


def derive_seed(seed: int, *key: int) -> int:
    """A 63-bit seed from ``seed`` and an integer key; distinct keys give unrelated seeds."""
    payload = struct.pack(f"<{1 + len(key)}q", seed, *key)
    digest = hashlib.blake2b(payload, digest_size=8, person=b"redit-rng").digest()
    return int.from_bytes(digest, "little") >> 1


def keyed_generator(seed: int, *key: int) -> torch.Generator:
    """A fresh CPU ``torch.Generator`` seeded from ``seed`` and ``key``."""
    generator = torch.Generator()
    generator.manual_seed(derive_seed(seed, *key))
    return generator
