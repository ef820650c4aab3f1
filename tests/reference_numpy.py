"""A slow, literal numpy restatement of the original's semantics, used to check our torch implementation on
layouts the golden files do not cover (64 and 256 with random weights). Written from the semantics in the
reference notes, not from the original code: up-sampling is a real ``repeat``, convolutions are explicit
im2col einsums, sCBN uses dense per-pixel maps over all classes.

State dicts use the Chainer keys (``block2/c1/W``) and are plain numpy arrays.
"""

from __future__ import annotations

import numpy as np

EPS = 2e-5


def conv(x: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    k = W.shape[-1]
    p = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    cols = np.stack([xp[:, :, i:i + h, j:j + w] for i in range(k) for j in range(k)], axis=2)  # n c kk h w
    out = np.einsum("nckhw,ock->nohw", cols, W.reshape(W.shape[0], c, k * k), optimize=True)
    return out + b[None, :, None, None]


def up(x: np.ndarray) -> np.ndarray:
    return x.repeat(2, axis=2).repeat(2, axis=3)


def scbn(x, weights, st, name):
    gamma = np.einsum("nhwk,kc->nchw", weights, st[f"{name}/gammas/W"])
    beta = np.einsum("nhwk,kc->nchw", weights, st[f"{name}/betas/W"])
    m, v = st[f"{name}/avg_mean"], st[f"{name}/avg_var"]
    return gamma * (x - m[None, :, None, None]) / np.sqrt(v[None, :, None, None] + EPS) + beta


def relu(x):
    return np.maximum(x, 0)


def gen_block(x, w1, w2, st, k):
    p = f"block{k}"
    h = relu(scbn(x, w1, st, f"{p}/b1"))
    h = conv(up(h), st[f"{p}/c1/W"], st[f"{p}/c1/b"])
    h = relu(scbn(h, w2, st, f"{p}/b2"))
    h = conv(h, st[f"{p}/c2/W"], st[f"{p}/c2/b"])
    return h + conv(up(x), st[f"{p}/c_sc/W"], st[f"{p}/c_sc/b"])


def n_gen_blocks(st) -> int:
    return sum(1 for k in st if k.endswith("/c1/W") and k.startswith("block"))


def tail(h, st, nb):
    last = nb + 2
    m, v = st[f"b{last}/avg_mean"], st[f"b{last}/avg_var"]
    h = st[f"b{last}/gamma"][None, :, None, None] * (h - m[None, :, None, None]) / np.sqrt(
        v[None, :, None, None] + EPS) + st[f"b{last}/beta"][None, :, None, None]
    return np.tanh(conv(relu(h), st[f"l{last}/W"], st[f"l{last}/b"]))


def head(z, st, bw):
    h = z @ st["l1/W"].T + st["l1/b"]
    return h.reshape(z.shape[0], -1, bw, bw)


def generate(st, z, weights, zs=None, blends=None, bw=4):
    nb = n_gen_blocks(st)
    if zs is None:
        h = head(z, st, bw)
        for k in range(nb):
            h = gen_block(h, weights[2 * k], weights[2 * k + 1], st, k + 2)
        return tail(h, st, nb)
    hs = [head(zz, st, bw) for zz in zs] + [None]
    hs[-1] = np.zeros_like(hs[0])
    hs[-1] = np.einsum("nijkl,nkli->njkl", np.stack(hs, 1), blends[0])
    for k in range(nb):
        hs = [gen_block(h, weights[2 * k], weights[2 * k + 1], st, k + 2) for h in hs]
        hs[-1] = np.einsum("nijkl,nkli->njkl", np.stack(hs, 1), blends[k + 1])
    return tail(hs[-1], st, nb)


def _sn(W, u):
    Wm = W.reshape(W.shape[0], -1)
    v = u @ Wm
    v = v / (np.linalg.norm(v) + 1e-12)
    u2 = v @ Wm.T
    u2 = u2 / (np.linalg.norm(u2) + 1e-12)
    sigma = np.sum((u2 @ Wm) * v)
    return W / sigma


def pool(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))


def dis_features(st, x):
    nb = sum(1 for k in st if k.startswith("block") and k.endswith("/c1/W"))

    def c(name, h):
        return conv(h, _sn(st[f"{name}/W"], st[f"{name}/u"]), st[f"{name}/b"])

    h = x
    for i in range(1, nb + 1):
        p = f"block{i}"
        has_sc = f"{p}/c_sc/W" in st
        if i == 1:
            h = pool(c(f"{p}/c2", relu(c(f"{p}/c1", h)))) + c(f"{p}/c_sc", pool(h))
        else:
            r = c(f"{p}/c2", relu(c(f"{p}/c1", relu(h))))
            sc = c(f"{p}/c_sc", h) if has_sc else h
            h = pool(r) + pool(sc) if has_sc else r + sc
    return relu(h).reshape(x.shape[0], -1)


def random_generator_state(channels, n_classes, dim_z=16, bw=4, seed=0) -> dict[str, np.ndarray]:
    """Random but non-trivial weights in the Chainer key layout (with the ``N`` counters)."""
    rng = np.random.default_rng(seed)
    st: dict[str, np.ndarray] = {}

    def f(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    st["l1/W"] = f(bw * bw * channels[0], dim_z, scale=dim_z ** -0.5)
    st["l1/b"] = f(bw * bw * channels[0], scale=0.05)
    for k in range(len(channels) - 1):
        cin, cout = channels[k], channels[k + 1]
        p = f"block{k + 2}"
        for bn, c in (("b1", cin), ("b2", cout)):
            st[f"{p}/{bn}/N"] = np.array(0, np.int64)
            st[f"{p}/{bn}/avg_mean"] = f(c, scale=0.3)
            st[f"{p}/{bn}/avg_var"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
            st[f"{p}/{bn}/gammas/W"] = 1 + f(n_classes, c, scale=0.3)
            st[f"{p}/{bn}/betas/W"] = f(n_classes, c, scale=0.2)
        st[f"{p}/c1/W"] = f(cout, cin, 3, 3, scale=(9 * cin) ** -0.5)
        st[f"{p}/c1/b"] = f(cout, scale=0.05)
        st[f"{p}/c2/W"] = f(cout, cout, 3, 3, scale=(9 * cout) ** -0.5)
        st[f"{p}/c2/b"] = f(cout, scale=0.05)
        st[f"{p}/c_sc/W"] = f(cout, cin, 1, 1, scale=cin ** -0.5)
        st[f"{p}/c_sc/b"] = f(cout, scale=0.05)
    last = len(channels) + 1
    ch = channels[-1]
    st[f"b{last}/N"] = np.array(0, np.int64)
    st[f"b{last}/avg_mean"] = f(ch, scale=0.3)
    st[f"b{last}/avg_var"] = rng.uniform(0.5, 1.5, ch).astype(np.float32)
    st[f"b{last}/gamma"] = 1 + f(ch, scale=0.3)
    st[f"b{last}/beta"] = f(ch, scale=0.2)
    st[f"l{last}/W"] = f(3, ch, 3, 3, scale=(9 * ch) ** -0.5)
    st[f"l{last}/b"] = f(3, scale=0.05)
    return st


def random_discriminator_state(blocks, n_classes, seed=0) -> dict[str, np.ndarray]:
    """``blocks``: (in, hidden, out, has_sc) per block, block 1 first."""
    rng = np.random.default_rng(seed)
    st: dict[str, np.ndarray] = {}

    def conv_params(name, cout, cin, k):
        st[f"{name}/W"] = (rng.standard_normal((cout, cin, k, k)) / np.sqrt(cin * k * k)).astype(np.float32)
        st[f"{name}/b"] = (rng.standard_normal(cout) * 0.05).astype(np.float32)
        st[f"{name}/u"] = rng.standard_normal((1, cout)).astype(np.float32)

    for i, (cin, hid, cout, has_sc) in enumerate(blocks, start=1):
        conv_params(f"block{i}/c1", hid, cin, 3)
        conv_params(f"block{i}/c2", cout, hid, 3)
        if has_sc:
            conv_params(f"block{i}/c_sc", cout, cin, 1)
    c = blocks[-1][2]
    last = len(blocks) + 1
    st[f"l{last}/W"] = (rng.standard_normal((1, c)) / np.sqrt(c)).astype(np.float32)
    st[f"l{last}/b"] = np.zeros(1, np.float32)
    st[f"l{last}/u"] = rng.standard_normal((1, 1)).astype(np.float32)
    st["l_y/W"] = (rng.standard_normal((n_classes, c)) / np.sqrt(c)).astype(np.float32)
    st["l_y/u"] = rng.standard_normal((1, n_classes)).astype(np.float32)
    return st
