"""The engine's data order: deterministic, sharded over ranks, resumable mid-epoch, world-size invariant.

Epoch ``e`` visits the dataset in the order of a permutation drawn from (seed, e) (or in file order with
``shuffle`` off), cut into global batches of ``batch`` samples (an incomplete last batch is dropped). Rank r
of R takes the r-th contiguous slice of each global batch, so the concatenation of all ranks' samples is
exactly the batch a single process would see. The position is a function of the step alone:
``epoch, batch_in_epoch = divmod(step, batches_per_epoch)``.

Random augmentation stays exact too: every sample is fetched with Python's ``random``, numpy's and torch's
global generators seeded from (seed, epoch, position in the epoch), in whichever process loads it, and the
training process's own generators are restored afterwards. So the draws do not depend on the number of
ranks or workers, nor on where a run was resumed."""
from __future__ import annotations

import random
import signal
from typing import Any, Iterator, List, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ganedit.errors import DataError
from ganedit.train.context import _mix


class ShardedBatchSampler(Sampler[List[Tuple[int, int]]]):
    """Endless batches of (dataset index, sample seed) for this rank, starting at ``start_step``."""

    def __init__(self, length: int, global_batch: int, rank: int, world_size: int, seed: int, shuffle: bool, start_step: int = 0) -> None:
        if length < global_batch:
            raise DataError(f"the dataset has {length} items, fewer than one global batch of {global_batch}")
        self.length, self.global_batch = length, global_batch
        self.local = global_batch // world_size
        self.rank, self.seed, self.shuffle = rank, seed, shuffle
        self.batches_per_epoch = length // global_batch
        self.start_step = start_step

    def position(self, step: int) -> Tuple[int, int]:
        """(epoch, batch index within the epoch) of ``step``."""
        return divmod(step, self.batches_per_epoch)

    def _order(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.length)
        g = torch.Generator().manual_seed(_mix(self.seed, epoch, 0x6F72646572))
        return torch.randperm(self.length, generator=g)

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        step = self.start_step
        epoch, _ = self.position(step)
        order = self._order(epoch)
        while True:
            e, b = self.position(step)
            if e != epoch:
                epoch, order = e, self._order(e)
            start = b * self.global_batch + self.rank * self.local
            ids = order[start : start + self.local].tolist()
            yield [(i, _mix(self.seed, epoch, start + j) & 0xFFFFFFFF) for j, i in enumerate(ids)]
            step += 1

    def __len__(self) -> int:  # endless; DataLoader only needs this for its own length
        return 1 << 62


class SeededItems(Dataset):
    """Wraps the method's dataset: item (index, seed) is ``dataset[index]`` fetched under global generators
    seeded with ``seed``; a whole batch is fetched at once and the caller's generator states are restored."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: Tuple[int, int]) -> Any:
        return self.__getitems__([item])[0]

    def __getitems__(self, items: Sequence[Tuple[int, int]]) -> List[Any]:
        saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
        try:
            out = []
            for index, seed in items:
                random.seed(seed)
                np.random.seed(seed)
                torch.default_generator.manual_seed(seed)  # CPU only: torch.manual_seed also visits every device
                out.append(self.dataset[index])
            return out
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])


def ignore_stop_signals(worker_id: int = 0) -> None:
    """DataLoader worker start-up: ignore SIGINT and SIGTERM, then unblock them (see ``start_workers``).

    Ctrl-C in a terminal, ``kill -- -PGID`` and torchrun's SIGTERM reach every process of the group, workers
    included. A worker that dies of it makes the trainer's next batch fail before the trainer can write its
    checkpoint; ignoring them leaves the stop to the trainer, which shuts its workers down as it exits (and
    torch's watchdog ends any worker whose parent is gone)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # a signal pending since the fork is dropped


STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def start_workers(loader: DataLoader) -> Iterator[Any]:
    """``iter(loader)`` with SIGINT/SIGTERM blocked while the workers start: a worker inherits the blocked mask,
    so a signal arriving before ``ignore_stop_signals`` runs in it stays pending and is then discarded. In this
    process the signal is delivered (to the trainer's handler) as soon as the mask is restored."""
    if loader.num_workers == 0 or not hasattr(signal, "pthread_sigmask"):
        return iter(loader)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        return iter(loader)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def make_loader(dataset: Dataset, sampler: ShardedBatchSampler, workers: int, pin: bool) -> DataLoader:
    """A DataLoader over ``sampler`` whose creation draws nothing from the global torch generator
    (a private generator supplies the workers' base seed), so resuming does not shift any random stream.
    Its workers ignore SIGINT/SIGTERM (start them with ``start_workers``)."""
    return DataLoader(
        SeededItems(dataset),
        batch_sampler=sampler,
        num_workers=workers,
        pin_memory=pin,
        generator=torch.Generator().manual_seed(sampler.seed),
        persistent_workers=False,
        prefetch_factor=2 if workers > 0 else None,
        worker_init_fn=ignore_stop_signals if workers > 0 else None,
    )


def count_skipped(batch: Any) -> int:
    """Unreadable images passed over to make this batch (datasets opened with skip_bad put a "skipped" count in
    every item; collation sums them, so the count survives worker processes)."""
    if isinstance(batch, dict) and isinstance(batch.get("skipped"), torch.Tensor):
        return int(batch["skipped"].sum())
    return 0


def to_device(batch: Any, device: torch.device) -> Any:
    """Tensors (in dicts, lists, tuples) moved to ``device``; everything else as is."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        moved = [to_device(v, device) for v in batch]
        return type(batch)(moved) if isinstance(batch, list) else tuple(moved)
    return batch
