"""The counter-based RNG and the data generators (engine/rng.py, engine/data.py)."""

from __future__ import annotations

import math
import random

import pytest
import torch

from toysup.engine import rng as R
from toysup.engine.data import importance, sparse_uniform_
from toysup.engine.rng import CounterRNG, fmix32, fmix32_int, hash_int

EDGE_WORDS = [0, 1, 2, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0x80000001, 0xDEADBEEF, 0xFFFFFFFE, 0xFFFFFFFF]


def unsigned(t: torch.Tensor) -> list[int]:
    """int32 bit patterns as the unsigned numbers they stand for."""
    return [v & R.M32 for v in t.flatten().tolist()]


def test_fmix32_reference_matches_murmurhash3_test_vectors():
    # MurmurHash3_x86_32 of the empty input is fmix32(seed): the SMHasher vectors for seeds 0, 1, 0xffffffff.
    assert fmix32_int(0) == 0
    assert fmix32_int(1) == 0x514E28B7
    assert fmix32_int(0xFFFFFFFF) == 0x81F16F39


def test_fmix32_tensor_matches_the_pure_python_reference():
    rnd = random.Random(1)
    words = EDGE_WORDS + [rnd.getrandbits(32) for _ in range(500)]
    as_int32 = torch.tensor([w - 2**32 if w >= 2**31 else w for w in words], dtype=torch.int32)
    assert unsigned(fmix32(as_int32)) == [fmix32_int(w) for w in words]


@pytest.mark.parametrize("stream", [R.DATA, R.DROPOUT, R.INIT, R.INIT + 1, R.EVAL, R.NOISE])
def test_bits_match_the_reference_for_every_instance_and_element(stream):
    seeds = [0, 1, 7, 12345, 2**31 - 1]
    rng = CounterRNG(torch.tensor(seeds), "cpu")
    for step in (0, 1, 2, 999, 2**31 - 1):
        bits = rng.bits(stream, step, (3, 4))
        assert bits.shape == (len(seeds), 3, 4)
        got = [unsigned(row) for row in bits]
        expected = [[hash_int(seed, stream, step, e) for e in range(12)] for seed in seeds]
        assert got == expected, (stream, step)


def test_uniforms_are_24_bit_fractions_of_the_reference_hash():
    rng = CounterRNG(torch.tensor([3, 4]), "cpu")
    u = rng.uniform(R.DATA, 5, (10,))
    for k, seed in enumerate((3, 4)):
        expected = [(hash_int(seed, R.DATA, 5, e) >> 8) / 2**24 for e in range(10)]
        assert u[k].tolist() == expected
    assert u.dtype == torch.float32


def test_uniforms_look_uniform():
    rng = CounterRNG(torch.arange(4), "cpu")
    u = rng.uniform(R.DATA, 1, (50_000,)).flatten()
    n = u.numel()
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    assert float(u.mean()) == pytest.approx(0.5, abs=0.005)
    assert float(u.var()) == pytest.approx(1 / 12, abs=0.002)
    # Chi-square over 20 equal bins: 19 degrees of freedom, 99.9th percentile about 43.8.
    counts = torch.histc(u, bins=20, min=0.0, max=1.0)
    expected = n / 20
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 43.8
    # Neighbouring elements are not correlated.
    x = u - 0.5
    lag1 = float((x[1:] * x[:-1]).mean() / x.var())
    assert abs(lag1) < 0.01


def test_streams_steps_and_seeds_give_unrelated_uniforms():
    rng = CounterRNG(torch.tensor([0, 1]), "cpu")
    draws = {
        "base": rng.uniform(R.DATA, 1, (20_000,))[0],
        "other seed": rng.uniform(R.DATA, 1, (20_000,))[1],
        "other step": rng.uniform(R.DATA, 2, (20_000,))[0],
        "other stream": rng.uniform(R.DROPOUT, 1, (20_000,))[0],
    }
    base = draws.pop("base") - 0.5
    for name, other in draws.items():
        corr = float((base * (other - 0.5)).mean() / (base.std() * other.std()))
        assert abs(corr) < 0.04, name


def test_an_instance_draws_the_same_numbers_whatever_else_is_in_the_batch():
    alone = CounterRNG(torch.tensor([42]), "cpu")
    crowd = CounterRNG(torch.tensor([7, 42, 42, 1000]), "cpu")
    for stream in (R.DATA, R.INIT, R.EVAL):
        a = alone.uniform(stream, 3, (8, 5))
        c = crowd.uniform(stream, 3, (8, 5))
        assert torch.equal(a[0], c[1]) and torch.equal(a[0], c[2])
        assert not torch.equal(a[0], c[0])
    assert torch.equal(alone.normal(R.INIT, 0, (5, 2))[0], crowd.normal(R.INIT, 0, (5, 2))[1])


def test_a_subset_and_a_shared_seed_draw_the_same_bits_as_the_full_batch():
    """subset: the evaluation's blocks of instances; shared: the probe's one seed for every row, hashed once."""
    crowd = CounterRNG(torch.tensor([7, 42, 9, 1000]), "cpu")
    part = crowd.subset(slice(1, 3))
    assert part.n == 2 and torch.equal(part.uniform(R.EVAL, 5, (6, 3)), crowd.uniform(R.EVAL, 5, (6, 3))[1:3])
    same = CounterRNG(torch.full((4,), 0x5EED), "cpu")
    shared = CounterRNG.shared(0x5EED, 4, "cpu")
    out = torch.empty(4, 6, 3)
    shared.uniform_(R.EVAL, 2, out, scale=torch.tensor([1.0, -2.0, 3.0]))
    assert torch.equal(out, same.uniform(R.EVAL, 2, (6, 3)) * torch.tensor([1.0, -2.0, 3.0]))
    assert torch.equal(shared.uniform(R.EVAL, 3, (6, 3), rows=slice(1, 3)), same.uniform(R.EVAL, 3, (6, 3))[1:3])
    assert torch.equal(shared.subset(slice(0, 2)).uniform(R.EVAL, 3, (6, 3)), same.uniform(R.EVAL, 3, (6, 3))[:2])


def test_uniform_into_a_kept_buffer_equals_a_fresh_draw():
    rng = CounterRNG(torch.tensor([1, 2, 3]), "cpu")
    out = torch.empty(3, 16, 5)
    rng.uniform_(R.DATA, 9, out)
    assert torch.equal(out, rng.uniform(R.DATA, 9, (16, 5)))


def test_normals_have_mean_zero_and_unit_variance():
    rng = CounterRNG(torch.tensor([0, 1]), "cpu")
    z = rng.normal(R.INIT, 0, (50_000,)).flatten()
    assert torch.isfinite(z).all()
    assert float(z.mean()) == pytest.approx(0.0, abs=0.015)
    assert float(z.std()) == pytest.approx(1.0, abs=0.015)
    # A symmetric, light-tailed shape: about 68.3% within one sigma, 95.4% within two.
    assert float((z.abs() < 1).float().mean()) == pytest.approx(0.6827, abs=0.01)
    assert float((z.abs() < 2).float().mean()) == pytest.approx(0.9545, abs=0.005)


@pytest.mark.parametrize("p", [1.0, 0.5, 0.1, 0.01])
def test_sparse_data_has_the_right_density_and_mean(p):
    n_samples, n = 20_000, 5
    rng = CounterRNG(torch.tensor([11, 12]), "cpu")
    out = torch.empty(2, n_samples, n)
    x = sparse_uniform_(rng, R.DATA, 1, torch.full((2, 1, 1), p), out)
    assert x is out
    active = x > 0
    density = float(active.float().mean())
    sigma = math.sqrt(p * (1 - p) / active.numel())
    assert abs(density - p) < 5 * sigma + 1e-9
    values = x[active]
    assert float(values.max()) < 1.0
    assert float(values.mean()) == pytest.approx(0.5, abs=5 * math.sqrt(1 / 12 / values.numel()))
    assert float(x.mean()) == pytest.approx(p / 2, rel=0.05)
    if p < 1:
        assert float((x == 0).float().mean()) == pytest.approx(1 - p, abs=5 * sigma)


def test_sparse_data_takes_a_probability_per_instance_and_per_feature():
    rng = CounterRNG(torch.tensor([0, 1]), "cpu")
    p = torch.tensor([[[0.5, 0.05, 1.0]], [[0.2, 0.2, 0.2]]])  # (I=2, 1, n=3)
    x = sparse_uniform_(rng, R.DATA, 1, p, torch.empty(2, 40_000, 3))
    density = (x > 0).float().mean(1)
    assert density == pytest.approx(p.squeeze(1), abs=0.01)


def test_data_depends_on_seed_and_step_only():
    p_low, p_high = torch.full((1, 1, 1), 0.3), torch.full((2, 1, 1), 0.3)
    a = sparse_uniform_(CounterRNG(torch.tensor([5]), "cpu"), R.DATA, 4, p_low, torch.empty(1, 64, 5))
    b = sparse_uniform_(CounterRNG(torch.tensor([9, 5]), "cpu"), R.DATA, 4, p_high, torch.empty(2, 64, 5))
    assert torch.equal(a[0], b[1])
    c = sparse_uniform_(CounterRNG(torch.tensor([5]), "cpu"), R.DATA, 5, p_low, torch.empty(1, 64, 5))
    assert not torch.equal(a, c)


def test_importance_is_decay_to_the_feature_index():
    got = importance(torch.tensor([1.0, 0.9, 0.5]), 4)
    expected = torch.tensor([[1, 1, 1, 1], [1, 0.9, 0.81, 0.729], [1, 0.5, 0.25, 0.125]])
    assert torch.allclose(got, expected)
