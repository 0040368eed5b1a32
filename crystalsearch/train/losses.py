"""Contrastive losses of CrystalCLR: NT-Xent and the composition-similarity (CS) loss.

Both work on the 2N views of a batch, ordered ``[z1[0..N-1], z2[0..N-1]]``: view ``a`` of crystal i is
row ``i`` and its partner is row ``i + N`` (and vice versa). Similarities are cosine similarities
divided by the temperature; each loss is the mean over the 2N anchors. Both are vectorised and use
``logsumexp`` for numerical stability.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def _logits(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cosine-similarity logits [2N, 2N] with the diagonal (self-similarity) set to -inf."""
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"z1 and z2 must both be [N, D]; got {tuple(z1.shape)} and {tuple(z2.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    z = torch.cat([z1, z2], dim=0)
    z = F.normalize(z.to(torch.promote_types(z.dtype, torch.float32)), dim=1)
    logits = z @ z.T / temperature
    eye = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
    return logits.masked_fill(eye, float("-inf"))


def _partner_index(n: int, device: torch.device) -> torch.Tensor:
    idx = torch.arange(n, device=device)
    return torch.cat([idx + n, idx])


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, *, temperature: float = 0.1) -> torch.Tensor:
    """NT-Xent (SimCLR) loss.

    For anchor view k with partner p(k): ``-log( exp(s_kp / t) / sum_{m != k} exp(s_km / t) )``,
    averaged over the 2N anchors.

    Args:
        z1: [N, D] first views; z2: [N, D] second views (z1[i] and z2[i] are the same crystal).
        temperature: softmax temperature t > 0.
    """
    logits = _logits(z1, z2, temperature)
    partner = _partner_index(z1.shape[0], logits.device)
    return F.cross_entropy(logits, partner)


def composition_similarity_loss(
    z1: torch.Tensor, z2: torch.Tensor, elements: torch.Tensor, *, temperature: float = 0.1
) -> torch.Tensor:
    """Composition-similarity (CS) loss of CrystalCLR+CS.

    Positives P(k) of anchor view k are the other views whose crystal shares at least one element
    with k's crystal (the partner view always qualifies). The loss is
    ``-log( mean_{p in P(k)} exp(s_kp / t) / sum_{m != k} exp(s_km / t) )``, averaged over 2N anchors.

    Args:
        z1, z2: [N, D] the two views of N crystals.
        elements: [N, E] boolean, ``elements[i, e]`` is True when crystal i contains element e.
        temperature: softmax temperature t > 0.
    """
    logits = _logits(z1, z2, temperature)
    n = z1.shape[0]
    if elements.shape[0] != n:
        raise ValueError(f"elements has {elements.shape[0]} rows for {n} crystals")
    el = elements.to(device=logits.device, dtype=logits.dtype)
    shares = (el @ el.T) > 0  # [N, N] crystal-level
    shares = shares | torch.eye(n, dtype=torch.bool, device=logits.device)  # a crystal shares with itself
    positives = shares.repeat(2, 2)
    positives.fill_diagonal_(False)
    pos_logits = logits.masked_fill(~positives, float("-inf"))
    log_mean_pos = torch.logsumexp(pos_logits, dim=1) - torch.log(positives.sum(dim=1).to(logits.dtype))
    log_denominator = torch.logsumexp(logits, dim=1)
    return (log_denominator - log_mean_pos).mean()


def alignment_uniformity(z1: torch.Tensor, z2: torch.Tensor) -> tuple[float, float]:
    """Wang & Isola (2020) alignment (mean squared distance of positive pairs, lower is better) and
    uniformity (log mean Gaussian potential, t=2, lower is better) of L2-normalised views."""
    a, b = F.normalize(z1.float(), dim=1), F.normalize(z2.float(), dim=1)
    alignment = (a - b).pow(2).sum(dim=1).mean()
    z = torch.cat([a, b])
    sq = torch.cdist(z, z).pow(2)
    mask = ~torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
    uniformity = torch.log(torch.exp(-2.0 * sq[mask]).mean())
    return float(alignment), float(uniformity)
