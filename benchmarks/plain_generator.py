"""A plain PyTorch restatement of the generator, used only as the benchmark baseline.

It computes the same function as :class:`collage_core.Generator` the obvious way: a real nearest-neighbour
up-sampling before every convolution, conditional BN by gathering class rows, sCBN by a dense one-hot einsum
over *all* classes, and feature blending that runs every stream through every block. It reads the weights of a
``collage_core`` generator, so both compute the same images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from collage_core import Generator


class PlainGenerator:
    def __init__(self, G: Generator) -> None:
        self.G = G
        self.cfg = G.config

    def _bn(self, x, bn, w):
        """w: (N,) ids, or (N, H, W, K) dense map."""
        xn = (x - bn.avg_mean[None, :, None, None]) / torch.sqrt(bn.avg_var[None, :, None, None] + bn.eps)
        if w.dim() == 1:
            return xn * bn.gammas.W[w][:, :, None, None] + bn.betas.W[w][:, :, None, None]
        gamma = torch.einsum("nhwk,kc->nchw", w, bn.gammas.W)
        beta = torch.einsum("nhwk,kc->nchw", w, bn.betas.W)
        return xn * gamma + beta

    def _block(self, blk, x, w1, w2):
        h = F.relu(self._bn(x, blk.b1, w1))
        h = F.conv2d(F.interpolate(h, scale_factor=2, mode="nearest"), blk.c1.W, blk.c1.b, padding=1)
        h = F.relu(self._bn(h, blk.b2, w2))
        h = F.conv2d(h, blk.c2.W, blk.c2.b, padding=1)
        return h + F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), blk.c_sc.W, blk.c_sc.b)

    def _tail(self, h):
        bn = self.G.final_bn
        h = F.batch_norm(h, bn.avg_mean, bn.avg_var, bn.gamma, bn.beta, False, 0.0, bn.eps)
        return torch.tanh(F.conv2d(F.relu(h), self.G.final_conv.W, self.G.final_conv.b, padding=1))

    @torch.no_grad()
    def __call__(self, z, weights, zs=None, blends=None):
        """``weights``: class ids (N,) or a list of L dense maps (N, H, W, K); ``blends``: list of (N, H, W, S+1)."""
        cfg, G = self.cfg, self.G
        bw = cfg.bottom_width
        per_layer = [weights] * cfg.n_map_layers if isinstance(weights, torch.Tensor) else weights
        if zs is None:
            h = F.linear(z, G.l1.W, G.l1.b).view(z.shape[0], -1, bw, bw)
            for k, blk in enumerate(G.blocks):
                h = self._block(blk, h, per_layer[2 * k], per_layer[2 * k + 1])
            return self._tail(h)
        hs = [F.linear(zz, G.l1.W, G.l1.b).view(zz.shape[0], -1, bw, bw) for zz in zs]
        hs.append(torch.zeros_like(hs[0]))
        hs[-1] = torch.einsum("nijkl,nkli->njkl", torch.stack(hs, 1), blends[0])
        for k, blk in enumerate(G.blocks):
            hs = [self._block(blk, h, per_layer[2 * k], per_layer[2 * k + 1]) for h in hs]
            hs[-1] = torch.einsum("nijkl,nkli->njkl", torch.stack(hs, 1), blends[k + 1])
        return self._tail(hs[-1])
