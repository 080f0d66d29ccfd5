"""A deterministic train/dev/test split without leakage.

Tatoeba has many pairs per sentence ("Hi." has several Chinese translations). Splitting pairs
independently would put a test source, or a test reference, into training. So pairs are
first joined into groups: two pairs belong to one group when they share a source sentence or
a target sentence (transitively, the connected components of the sentence graph). Whole
groups are then dealt out in a seeded random order: a group goes to the first held-out split
it still fits in, otherwise to training.

The work is done on 64-bit sentence keys in tensors, so it scales to millions of pairs.
"""

from __future__ import annotations

import torch

from nmt.errors import DataError

TRAIN = 0  # split code of the pairs no held-out split takes


def connected_groups(source_keys: torch.Tensor, target_keys: torch.Tensor) -> torch.Tensor:
    """Group label per pair: equal exactly for pairs connected through shared sentences.

    Label propagation: every pair repeatedly takes the smallest label among the pairs sharing
    its source, then its target; pointer jumping (a label's own label) shortens long chains.
    Labels only decrease, and the fixed point is the smallest pair index of each group.
    """
    count = len(source_keys)
    sentence_ids = [
        torch.unique(keys, return_inverse=True)[1] for keys in (source_keys, target_keys)
    ]
    labels = torch.arange(count)
    while True:
        updated = labels
        for ids in sentence_ids:
            smallest = torch.full((int(ids.max()) + 1,), count, dtype=torch.long)
            smallest.scatter_reduce_(0, ids, updated, reduce="amin")
            updated = smallest[ids]
        updated = updated[updated]
        if torch.equal(updated, labels):
            return labels
        labels = updated


def assign_splits(
    source_keys: torch.Tensor,
    target_keys: torch.Tensor,
    held_out_sizes: list[int],
    seed: int,
) -> torch.Tensor:
    """Split code per pair: 0 for training, ``k`` for the k-th held-out split (1-based).

    Each held-out split k gets at most ``held_out_sizes[k-1]`` pairs (exactly that many
    unless only groups too large to fit remain). Deterministic for (keys, sizes, seed).
    """
    if len(source_keys) == 0:
        return torch.zeros(0, dtype=torch.int8)
    if sum(held_out_sizes) >= len(source_keys):
        raise DataError(
            f"cannot split {len(source_keys)} pairs into held-out sets of "
            f"{' + '.join(map(str, held_out_sizes))} pairs and a training set"
        )
    labels = connected_groups(source_keys, target_keys)
    groups, group_of_pair, group_sizes = torch.unique(
        labels, return_inverse=True, return_counts=True
    )
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(groups), generator=generator)
    group_split = torch.full((len(groups),), TRAIN, dtype=torch.int8)
    room = list(held_out_sizes)
    for group, size in zip(order.tolist(), group_sizes[order].tolist(), strict=True):
        if not any(room):
            break
        for split, left in enumerate(room):
            if size <= left:
                group_split[group] = split + 1
                room[split] -= size
                break
    return group_split[group_of_pair]
