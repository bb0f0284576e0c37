"""A convolutional GRU closure that carries memory between surrogate steps (non-Markovian M_θ).

    z = σ(W_z * [x, h]),  r = σ(W_r * [x, h]),  ñ = tanh(W_n * [x, r ⊙ h]),
    h' = (1 − z) ⊙ h + z ⊙ ñ,      M = mask ⊙ W_o * [h', x]

The head W_o starts at zero, so an untrained closure adds nothing and the surrogate begins as
pure physics; memory h is what lets the correction depend on the history c̄₀ … c̄_t.
"""
from __future__ import annotations

import torch
from torch import nn


class ConvGRUClosure(nn.Module):
    def __init__(self, in_channels: int, hidden_channels: int = 8, kernel_size: int = 3):
        super().__init__()
        pad = kernel_size // 2
        self.hidden_channels = hidden_channels
        self.gates = nn.Conv2d(in_channels + hidden_channels, 2 * hidden_channels, kernel_size, padding=pad)
        self.candidate = nn.Conv2d(in_channels + hidden_channels, hidden_channels, kernel_size, padding=pad)
        self.head = nn.Conv2d(in_channels + hidden_channels, 1, kernel_size, padding=pad)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def initial_state(self, x: torch.Tensor) -> torch.Tensor:
        b, _, nx, ny = x.shape
        return x.new_zeros(b, self.hidden_channels, nx, ny)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C_in, nx, ny), h (B, C_h, nx, ny) → (correction (B, nx, ny), new h)."""
        z, r = torch.sigmoid(self.gates(torch.cat([x, h], 1))).chunk(2, dim=1)
        cand = torch.tanh(self.candidate(torch.cat([x, r * h], 1)))
        h_new = (1 - z) * h + z * cand
        return self.head(torch.cat([h_new, x], 1)).squeeze(1), h_new
