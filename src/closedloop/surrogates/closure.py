"""A convolutional GRU closure that carries memory between surrogate steps (non-Markovian M_θ).

    z = σ(W_z * [x, h]),  r = σ(W_r * [x, h]),  ñ = tanh(W_n * [x, r ⊙ h]),
    h' = (1 − z) ⊙ h + z ⊙ ñ,      M = mask ⊙ W_o * [h', x]

The head W_o starts at zero, so an untrained closure adds nothing and the surrogate begins as
pure physics; memory h is what lets the correction depend on the history c̄₀ … c̄_t.

A 3 × 3 cell reaches one cell per step, so its memory is local. With ``global_context`` the gates
and the candidate also see g = mean over the plane of [x, h], broadcast to every cell: what happens
anywhere in the hall, now and (through h) before, can change the memory everywhere.
"""
from __future__ import annotations

import torch
from torch import nn


class ConvGRUClosure(nn.Module):
    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3,
                 global_context: bool = False):
        super().__init__()
        pad = kernel_size // 2
        self.hidden_channels = hidden_channels
        self.global_context = global_context
        extra = in_channels + hidden_channels if global_context else 0
        self.gates = nn.Conv2d(in_channels + hidden_channels + extra, 2 * hidden_channels, kernel_size, padding=pad)
        self.candidate = nn.Conv2d(in_channels + hidden_channels + extra, hidden_channels, kernel_size, padding=pad)
        self.head = nn.Conv2d(in_channels + hidden_channels, 1, kernel_size, padding=pad)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def initial_state(self, x: torch.Tensor) -> torch.Tensor:
        b, _, nx, ny = x.shape
        return x.new_zeros(b, self.hidden_channels, nx, ny)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C_in, nx, ny), h (B, C_h, nx, ny) → (correction (B, nx, ny), new h)."""
        context = []
        if self.global_context:
            context = [torch.cat([x, h], 1).mean(dim=(-2, -1), keepdim=True).expand(-1, -1, *x.shape[-2:])]
        z, r = torch.sigmoid(self.gates(torch.cat([x, h, *context], 1))).chunk(2, dim=1)
        cand = torch.tanh(self.candidate(torch.cat([x, r * h, *context], 1)))
        h_new = (1 - z) * h + z * cand
        return self.head(torch.cat([h_new, x], 1)).squeeze(1), h_new


class ConvLSTMCell(nn.Module):
    """i, f, o, g = split(W * [x, h]);  c' = σ(f) c + σ(i) tanh(g);  h' = σ(o) tanh(c')."""

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size: int = 3):
        super().__init__()
        self.hidden_channels = hidden_channels
        self.conv = nn.Conv2d(in_channels + hidden_channels, 4 * hidden_channels, kernel_size,
                              padding=kernel_size // 2)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        h, c = state
        i, f, o, g = self.conv(torch.cat([x, h], 1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)


class EncoderLSTMClosure(nn.Module):
    """The paper's memory closure: encoder → stacked ConvLSTM → decoder → CNN head.

    The encoder halves the resolution (a wider receptive field for the memory), the ConvLSTM
    stack carries the history on the coarse grid, the decoder returns to the plane grid, and the
    head sees [decoded memory, current inputs]. The head's last layer starts at zero, so an
    untrained closure adds nothing. ``memory=False`` gives the Markovian ablation: the same
    network with its recurrent state reset every step.

    The recurrent state is packed in one tensor ``(B, 2·L·C_h, nx', ny')`` (h and c of each of
    the L layers) so that callers can carry and detach it like the ConvGRU's.
    """

    def __init__(self, in_channels: int, hidden_channels: int, layers: int, memory: bool = True):
        super().__init__()
        self.hidden_channels = hidden_channels
        self.layers = layers
        self.memory = memory
        ch = hidden_channels
        self.encoder = nn.Sequential(nn.Conv2d(in_channels, ch, 3, padding=1), nn.GELU(),
                                     nn.Conv2d(ch, ch, 3, padding=1, stride=2), nn.GELU())
        self.cells = nn.ModuleList(ConvLSTMCell(ch, ch) for _ in range(layers))
        self.decoder = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.GELU())
        self.head = nn.Sequential(nn.Conv2d(ch + in_channels, ch, 3, padding=1), nn.GELU(),
                                  nn.Conv2d(ch, 1, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def state_shape(self, nx: int, ny: int) -> tuple[int, int, int]:
        return (2 * self.layers * self.hidden_channels, (nx + 1) // 2, (ny + 1) // 2)

    def forward(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C_in, nx, ny), packed state → (correction (B, nx, ny), new packed state)."""
        if not self.memory:
            state = torch.zeros_like(state)
        z = self.encoder(x)
        parts = list(state.chunk(2 * self.layers, dim=1))
        new = []
        for k, cell in enumerate(self.cells):
            z, (h, c) = cell(z, (parts[2 * k], parts[2 * k + 1]))
            new += [h, c]
        up = nn.functional.interpolate(self.decoder(z), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(torch.cat([up, x], 1)).squeeze(1), torch.cat(new, 1)
