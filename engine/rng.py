"""Counter-based random numbers, one independent stream per instance.

A random value here is a pure function of (instance seed, stream, step, element
index), computed with an integer hash. That gives the property the design asks
for: an instance's data, dropout masks and initial weights depend on its own
seed alone, never on which other instances share its batch, and the uniform bits
are identical on CPU and CUDA. It is also fully vectorised: one hash per element,
no Python loop over instances.

The mixer is the 32-bit MurmurHash3 finaliser applied to the element index,
keyed per (seed, stream, step). Values live in int32 tensors as the bit
patterns of unsigned 32-bit numbers: multiplication wraps modulo 2**32 on CPU
and CUDA, and right shifts are masked to act as logical shifts. A test pins the
outputs against a pure-Python reference. Work happens in place in kept buffers,
because on a CPU allocating a fresh large tensor costs more than the arithmetic:
this runs as fast as ``torch.rand`` into a new tensor.
"""

from __future__ import annotations

import math

import torch

M32 = 0xFFFFFFFF
_C1 = 0x85EBCA6B
_C2 = 0xC2B2AE35
_GOLDEN = 0x9E3779B9

# Each use of randomness gets its own stream, so that, say, turning dropout on
# does not change the training data. Normal draws use a stream and the one
# after it, hence the spacing.
DATA = 0x10
DROPOUT = 0x20
INIT = 0x30
EVAL = 0x40
NOISE = 0x50
PROBE = 0x60  # the fixed probe set of model-level metrics (linear regions), drawn with its own seed
PAIRS = 0xA0  # the shared on/off draw of correlated or anticorrelated feature pairs


def _i32(c: int) -> int:
    """The int32 with the same bits as the unsigned 32-bit number ``c``."""
    c &= M32
    return c - 2**32 if c >= 2**31 else c


def fmix32_(h: torch.Tensor, tmp: torch.Tensor) -> torch.Tensor:
    """MurmurHash3's 32-bit finaliser, in place on an int32 tensor; ``tmp`` is scratch."""
    torch.bitwise_right_shift(h, 16, out=tmp).bitwise_and_(0xFFFF)
    h.bitwise_xor_(tmp).mul_(_i32(_C1))
    torch.bitwise_right_shift(h, 13, out=tmp).bitwise_and_(0x7FFFF)
    h.bitwise_xor_(tmp).mul_(_i32(_C2))
    torch.bitwise_right_shift(h, 16, out=tmp).bitwise_and_(0xFFFF)
    return h.bitwise_xor_(tmp)


def mix32(h: torch.Tensor) -> torch.Tensor:
    """:func:`fmix32_` without in-place work, for compiled graphs (the same bits)."""
    h = h ^ ((h >> 16) & 0xFFFF)
    h = h * _i32(_C1)
    h = h ^ ((h >> 13) & 0x7FFFF)
    h = h * _i32(_C2)
    return h ^ ((h >> 16) & 0xFFFF)


def uniform_bits(k1: torch.Tensor, k2: torch.Tensor, elements: torch.Tensor) -> torch.Tensor:
    """The 24-bit integers behind :meth:`CounterRNG.uniform_`, without in-place work (for compiled graphs):
    ``k1``, ``k2`` (rows,) are the keys of a (stream, step), ``elements`` the hashed element indices.
    As int32, shape (rows, *elements.shape)."""
    extra = (1,) * elements.dim()
    h = mix32((elements ^ k1.view(-1, *extra)) + k2.view(-1, *extra))
    return (h >> 8) & 0xFFFFFF


def fmix32(h: torch.Tensor) -> torch.Tensor:
    """Out-of-place :func:`fmix32_` (small tensors: keys, tests)."""
    h = h.to(torch.int32).clone()
    return fmix32_(h, torch.empty_like(h))


def fmix32_int(h: int) -> int:
    """Pure-Python twin of :func:`fmix32`, the reference the tests compare against."""
    h &= M32
    h ^= h >> 16
    h = (h * _C1) & M32
    h ^= h >> 13
    h = (h * _C2) & M32
    return h ^ (h >> 16)


def hash_int(seed: int, stream: int, step: int, element: int) -> int:
    """Pure-Python reference of one value of :meth:`CounterRNG.bits`."""
    base = fmix32_int(fmix32_int(seed) + _GOLDEN * stream)
    k1 = fmix32_int(base ^ (step & M32))
    k2 = fmix32_int(k1 + base + _C2)
    return fmix32_int(((fmix32_int(element) ^ k1) + k2) & M32)


class CounterRNG:
    """Uniform and normal draws for a batch of instances, keyed by their seeds.

    ``seeds`` is a 1-D integer tensor, one seed per instance. Every draw has a
    leading instance dimension; ``shape`` is the per-instance shape.
    """

    def __init__(self, seeds: torch.Tensor, device: torch.device | str):
        self.device = torch.device(device)
        self.seeds = fmix32((seeds.to(torch.int64) & M32).to(torch.int32)).to(self.device)
        self.n = int(seeds.numel())
        self._one_seed = False  # see shared()
        self._elements: dict[tuple[int, ...], torch.Tensor] = {}
        self._scratch: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}
        self._bases: dict[int, torch.Tensor] = {}  # per stream, fixed for the whole run
        self._last_keys: tuple[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] | None = None

    @classmethod
    def shared(cls, seed: int, rows: int, device: torch.device | str) -> CounterRNG:
        """``rows`` instances that all have the seed ``seed``: every row of a draw is the same, so it is
        hashed once and broadcast (the same bits as ``CounterRNG(torch.full((rows,), seed))``, at 1/rows
        of the hashing). For :meth:`uniform_` and :meth:`uniform` (the linear-region probe's inputs)."""
        rng = cls(torch.tensor([seed]), device)
        rng.n, rng._one_seed = rows, True
        return rng

    def subset(self, rows: slice) -> CounterRNG:
        """The instances ``rows`` as an RNG of their own: the same draws as those rows of this one."""
        sub = CounterRNG(torch.zeros(0, dtype=torch.int64), self.device)
        sub.seeds = self.seeds if self._one_seed else self.seeds[rows]
        sub.n, sub._one_seed = len(range(self.n)[rows]), self._one_seed
        return sub

    def keys(self, stream: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The (instances,) int32 keys of one (stream, step), for :func:`uniform_bits`."""
        return self._keys(stream, step)

    def element_hash(self, shape: tuple[int, ...]) -> torch.Tensor:
        """The hashed element indices of a per-instance ``shape``, for :func:`uniform_bits` (kept, do not write)."""
        return self._element_hash(shape)

    def _keys(self, stream: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        # A step's draws are often made block by block (see ``rows``): key once per (stream, step).
        if self._last_keys is not None and self._last_keys[0] == (stream, step):
            return self._last_keys[1]
        base = self._bases.get(stream)
        if base is None:
            base = self._bases[stream] = fmix32(self.seeds + _i32(_GOLDEN * stream))
        k1 = fmix32(base ^ _i32(step))
        k2 = fmix32(k1 + base + _i32(_C2))
        self._last_keys = ((stream, step), (k1, k2))
        return k1, k2

    def _element_hash(self, shape: tuple[int, ...]) -> torch.Tensor:
        hashed = self._elements.get(shape)
        if hashed is None:
            count = math.prod(shape)
            if count >= 2**31:
                raise ValueError(f"a single draw of {count} values per instance is too large")
            hashed = fmix32(torch.arange(count, device=self.device, dtype=torch.int32)).view(shape)
            self._elements[shape] = hashed
        return hashed

    def bits(self, stream: int, step: int, shape: tuple[int, ...], rows: slice = slice(None)) -> torch.Tensor:
        """32-bit hashes as int32 bit patterns, shape (instances, *shape), or only the instances
        in ``rows`` (a block of the batch: the same values as the full draw's rows).

        The returned tensor is a kept scratch buffer, overwritten by the next draw
        of the same shape: consume it before drawing again.
        """
        if self._one_seed:  # one row hashed, broadcast (a view: read it, do not write it)
            return self._bits(stream, step, shape, slice(None)).expand(len(range(self.n)[rows]), *shape)
        return self._bits(stream, step, shape, rows)

    def _bits(self, stream: int, step: int, shape: tuple[int, ...], rows: slice) -> torch.Tensor:
        k1, k2 = self._keys(stream, step)
        extra = (1,) * len(shape)
        h, tmp = (buf[rows] for buf in self._buffers(shape))
        torch.bitwise_xor(self._element_hash(shape), k1[rows].view(-1, *extra), out=h)
        h.add_(k2[rows].view(-1, *extra))
        return fmix32_(h, tmp)

    def _buffers(self, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        bufs = self._scratch.get(shape)
        if bufs is None:
            full = (1 if self._one_seed else self.n, *shape)
            bufs = (torch.empty(full, dtype=torch.int32, device=self.device),
                    torch.empty(full, dtype=torch.int32, device=self.device))
            self._scratch[shape] = bufs
        return bufs

    def uniform_(self, stream: int, step: int, out: torch.Tensor,
                 scale: float | torch.Tensor = 1.0, rows: slice = slice(None)) -> torch.Tensor:
        """Fill float tensor ``out`` (instances, *shape) with uniforms on [0, 1), 24 random bits,
        times ``scale`` (a float or a tensor broadcasting against ``out``; folding a scale into
        this pass saves one pass over the data). With ``rows``, ``out`` holds just those instances."""
        shape = tuple(out.shape[1:])
        if self._one_seed:
            rows = slice(None)  # one row, broadcast by the copy
        h = self._bits(stream, step, shape, rows)
        tmp = self._buffers(shape)[1][rows]
        torch.bitwise_right_shift(h, 8, out=tmp).bitwise_and_(0xFFFFFF)
        out.copy_(tmp)
        return out.mul_(scale * (1.0 / 2**24))

    def uniform(self, stream: int, step: int, shape: tuple[int, ...], rows: slice = slice(None)) -> torch.Tensor:
        """A new float32 tensor of uniforms on [0, 1), shape (instances, *shape) or (rows, *shape)."""
        count = len(range(self.n)[rows])
        out = torch.empty((count, *shape), device=self.device)
        return self.uniform_(stream, step, out, rows=rows)

    def normal(self, stream: int, step: int, shape: tuple[int, ...]) -> torch.Tensor:
        """Standard normals by Box-Muller from streams ``stream`` and ``stream + 1``."""
        u1 = self.uniform(stream, step, shape)
        u2 = self.uniform(stream + 1, step, shape)
        radius = torch.sqrt(-2.0 * torch.log1p(-u1))
        return radius * torch.cos((2.0 * math.pi) * u2)
