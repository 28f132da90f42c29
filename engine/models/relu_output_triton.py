"""The relu_output family's fused training kernel, in Triton: many steps per launch, state on chip.

One program trains one instance: it loads W (n, m), b (n) and the optimiser's
moments once, then for every step of the launch hashes its data batch and
dropout mask in place (engine.rng's counter-based MurmurHash3 streams, the same
bits as the eager step), runs the forward and the hand-written backward of
ReluOutput._block_step tile by tile over the batch, and applies the
Adam/AdamW/SGD update of engine.optim.BatchedOptimizer, freezing an instance
whose loss stops being finite. Only the weights, moments, the last step's loss
and the diverged flag go back to memory.

The matmuls are broadcast-and-sum in float32 (no tl.dot: it would round through
TF32 on NVIDIA cards and needs dimensions of 16 and up), so the numbers agree
with the eager step's to float32 round-off, not bit for bit.

Whether ``triton.jit`` compiles for a GPU or interprets on CPU tensors is fixed
when this module is imported (TRITON_INTERPRET / ``triton.knobs.runtime.interpret``):
import it only through engine.kernel_step, which checks that the mode fits the device.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _fmix(h):
    """MurmurHash3's 32-bit finaliser on uint32 (engine.rng.fmix32_)."""
    h ^= h >> 16
    h *= 0x85EBCA6B
    h ^= h >> 13
    h *= 0xC2B2AE35
    h ^= h >> 16
    return h


@triton.jit
def _keys(base, step):
    """The (k1, k2) keys of one (stream, step) from the stream's per-instance base (CounterRNG._keys)."""
    k1 = _fmix(base ^ step)
    k2 = _fmix(k1 + base + 0xC2B2AE35)
    return k1, k2


@triton.jit
def _uniform24(rows, cols, width, k1, k2):
    """The 24 random bits of elements (rows, cols) of a (B, width) draw (engine.rng.uniform_bits), as float."""
    idx = (rows[:, None] * width + cols[None, :]).to(tl.uint32)
    h = _fmix((_fmix(idx) ^ k1) + k2)
    return ((h >> 8) & 0xFFFFFF).to(tl.float32)


@triton.jit
def _data_tile(rows, rn, N: tl.constexpr, B: tl.constexpr, k1, k2, scale):
    """A (BB, BN) tile of the sparse uniform batch (engine.data.sparse_uniform_, independent features):
    ``scale`` is -1/p * 2^-24 per feature; padding rows and features are 0."""
    xs = _uniform24(rows, rn, N, k1, k2) * scale[None, :]
    valid = (rows[:, None] < B) & (rn[None, :] < N)
    return tl.where(valid & (xs > -1.0), -xs, 0.0)


@triton.jit
def _keep_tile(rows, rm, M: tl.constexpr, d1, d2, q, keep_value):
    """A (BB, BM) tile of the dropout mask on h: 1/(1-q) where the uniform is >= q, else 0."""
    u = _uniform24(rows, rm, M, d1, d2) * (1.0 / 16777216.0)
    return tl.where(u >= q, keep_value, 0.0)


@triton.jit
def _adam(p, g, m, v, lr, wd, bias1, bias2_sqrt, dead, b2, one_minus_b1, one_minus_b2, eps, OPT: tl.constexpr):
    """One Adam (OPT 1) or AdamW (OPT 2) update of a parameter; a dead instance's parameter stays."""
    if OPT == 2:
        p = p * (1.0 - lr * wd)  # decoupled decay (BatchedOptimizer applies it to frozen instances too)
    else:
        g = g + wd * p
    m = m + one_minus_b1 * (g - m)  # torch.lerp with weight < 0.5
    v = v * b2 + one_minus_b2 * g * g
    update = (lr / bias1) * m / (tl.sqrt(v) / bias2_sqrt + eps)
    return tl.where(dead, p, p - update), m, v


@triton.jit
def train_kernel(W_ptr, b_ptr, mW_ptr, vW_ptr, mb_ptr, vb_ptr,
                 scale_ptr, imp2_ptr, q_ptr, lr_ptr, wd_ptr, data_base_ptr, drop_base_ptr,
                 bias1_ptr, bias2_ptr, loss_ptr, dead_ptr,
                 first_step, nsteps, b2, one_minus_b1, one_minus_b2, eps,
                 N: tl.constexpr, M: tl.constexpr, B: tl.constexpr,
                 BN: tl.constexpr, BM: tl.constexpr, BB: tl.constexpr,
                 RELU: tl.constexpr, HIDDEN_RELU: tl.constexpr, DROPOUT: tl.constexpr, OPT: tl.constexpr):
    """``nsteps`` training steps from ``first_step`` of one instance per program (OPT: 0 SGD, 1 Adam, 2 AdamW)."""
    i = tl.program_id(0).to(tl.int64)
    rn = tl.arange(0, BN)
    rm = tl.arange(0, BM)
    rb = tl.arange(0, BB)
    nmask = rn < N
    wmask = nmask[:, None] & (rm[None, :] < M)
    woff = i * N * M + rn[:, None] * M + rm[None, :]
    boff = i * N + rn
    W = tl.load(W_ptr + woff, mask=wmask, other=0.0)
    bias = tl.load(b_ptr + boff, mask=nmask, other=0.0)
    if OPT == 0:
        mW = tl.zeros([BN, BM], tl.float32)
        vW = tl.zeros([BN, BM], tl.float32)
        mb = tl.zeros([BN], tl.float32)
        vb = tl.zeros([BN], tl.float32)
    else:
        mW = tl.load(mW_ptr + woff, mask=wmask, other=0.0)
        vW = tl.load(vW_ptr + woff, mask=wmask, other=0.0)
        mb = tl.load(mb_ptr + boff, mask=nmask, other=0.0)
        vb = tl.load(vb_ptr + boff, mask=nmask, other=0.0)
    scale = tl.load(scale_ptr + boff, mask=nmask, other=0.0)
    imp2 = tl.load(imp2_ptr + boff, mask=nmask, other=0.0)
    q = tl.load(q_ptr + i)
    keep_value = 1.0 / (1.0 - q)
    lr = tl.load(lr_ptr + i)
    wd = tl.load(wd_ptr + i)
    data_base = tl.load(data_base_ptr + i).to(tl.uint32, bitcast=True)
    drop_base = tl.load(drop_base_ptr + i).to(tl.uint32, bitcast=True)
    dead = tl.load(dead_ptr + i) != 0
    loss = tl.zeros([], tl.float32)
    for s in range(nsteps):
        step = (tl.zeros([], tl.int32) + first_step + s).to(tl.uint32)
        k1, k2 = _keys(data_base, step)
        d1, d2 = _keys(drop_base, step)
        dW = tl.zeros([BN, BM], tl.float32)
        db = tl.zeros([BN], tl.float32)
        loss_parts = tl.zeros([BN], tl.float32)
        for start in range(0, B, BB):
            rows = start + rb
            x = _data_tile(rows, rn, N, B, k1, k2, scale)  # (BB, BN)
            h = tl.sum(x[:, :, None] * W[None, :, :], axis=1)  # (BB, BM)
            if HIDDEN_RELU:
                active = h > 0.0
                h = tl.maximum(h, 0.0)
            if DROPOUT:
                keep = _keep_tile(rows, rm, M, d1, d2, q, keep_value)
                h = h * keep
            pre = tl.sum(h[:, None, :] * W[None, :, :], axis=2) + bias[None, :]  # (BB, BN)
            if RELU:  # noqa: SIM108 (a constexpr branch, compiled away)
                diff = tl.maximum(pre, 0.0) - x
            else:
                diff = pre - x
            diff = tl.where((rows < B)[:, None], diff, 0.0)
            g = diff * imp2[None, :]  # dloss/dpre
            loss_parts += tl.sum(g * diff, axis=0)
            if RELU:
                g = tl.where(pre > 0.0, g, 0.0)
            db += tl.sum(g, axis=0)
            gh = tl.sum(g[:, :, None] * W[None, :, :], axis=1)  # dloss/dh: (BB, BM)
            if DROPOUT:
                gh = gh * keep
            if HIDDEN_RELU:
                gh = tl.where(active, gh, 0.0)
            dW += tl.sum(x[:, :, None] * gh[:, None, :] + g[:, :, None] * h[:, None, :], axis=0)
        loss = tl.sum(loss_parts, axis=0) * 0.5
        dead = dead | (loss != loss) | (tl.abs(loss) == float("inf"))
        if OPT == 0:
            W = tl.where(dead, W, W - lr * (dW + wd * W))
            bias = tl.where(dead, bias, bias - lr * (db + wd * bias))
        else:
            bias1 = tl.load(bias1_ptr + s)
            bias2_sqrt = tl.load(bias2_ptr + s)
            W, mW, vW = _adam(W, dW, mW, vW, lr, wd, bias1, bias2_sqrt, dead, b2, one_minus_b1, one_minus_b2,
                              eps, OPT)
            bias, mb, vb = _adam(bias, db, mb, vb, lr, wd, bias1, bias2_sqrt, dead, b2, one_minus_b1,
                                 one_minus_b2, eps, OPT)
    tl.store(W_ptr + woff, W, mask=wmask)
    tl.store(b_ptr + boff, bias, mask=nmask)
    if OPT != 0:
        tl.store(mW_ptr + woff, mW, mask=wmask)
        tl.store(vW_ptr + woff, vW, mask=wmask)
        tl.store(mb_ptr + boff, mb, mask=nmask)
        tl.store(vb_ptr + boff, vb, mask=nmask)
    tl.store(loss_ptr + i, loss)
    tl.store(dead_ptr + i, dead.to(tl.int8))


@triton.jit
def draw_kernel(x_ptr, keep_ptr, scale_ptr, q_ptr, data_base_ptr, drop_base_ptr, step,
                N: tl.constexpr, M: tl.constexpr, B: tl.constexpr,
                BN: tl.constexpr, BM: tl.constexpr, BB: tl.constexpr):
    """Writes one step's data batch (B, n) and dropout mask (B, m) of one instance per program, from the
    same helpers as train_kernel: the tests compare them with the eager path's draws."""
    i = tl.program_id(0).to(tl.int64)
    rn = tl.arange(0, BN)
    rm = tl.arange(0, BM)
    rb = tl.arange(0, BB)
    scale = tl.load(scale_ptr + i * N + rn, mask=rn < N, other=0.0)
    q = tl.load(q_ptr + i)
    step32 = (tl.zeros([], tl.int32) + step).to(tl.uint32)
    k1, k2 = _keys(tl.load(data_base_ptr + i).to(tl.uint32, bitcast=True), step32)
    d1, d2 = _keys(tl.load(drop_base_ptr + i).to(tl.uint32, bitcast=True), step32)
    for start in range(0, B, BB):
        rows = start + rb
        x = _data_tile(rows, rn, N, B, k1, k2, scale)
        tl.store(x_ptr + i * B * N + rows[:, None] * N + rn[None, :], x,
                 mask=(rows[:, None] < B) & (rn[None, :] < N))
        keep = _keep_tile(rows, rm, M, d1, d2, q, 1.0 / (1.0 - q))
        tl.store(keep_ptr + i * B * M + rows[:, None] * M + rm[None, :], keep,
                 mask=(rows[:, None] < B) & (rm[None, :] < M))
