"""Bugs of the affine map γ x̂ + β."""
from __future__ import annotations

from bn_invariants.zoo.base import ZooBatchNorm, channel_view


class BetaBeforeNormalisationBatchNorm(ZooBatchNorm):
    """Adds β to the input before normalising instead of to x̂: in training mode the
    batch mean absorbs it, so β has no effect and gets no gradient."""

    BUG = "β added before the normalisation (γ·BN(x + β)) instead of after"
    CAUSE = "affine"
    SOURCE = ("operator-order slips in hand-written normalisation layers (Ioffe & Szegedy "
              "2015, Algorithm 1 applies γ, β last; section 3.2 on why a bias before BN is void)")
    CAUGHT_BY = ("affine-semantics",)

    def forward(self, x):
        if self.bias is not None and x.dim() >= 2 and x.shape[1] == self.num_features:
            x = x + channel_view(self.bias.to(x.dtype), x.dim())
        return super().forward(x)

    def scale_shift(self, xhat):
        if self.weight is None:
            return xhat
        return xhat * channel_view(self.weight.to(xhat.dtype), xhat.dim())
