"""The U-Net of Jansson et al., "Singing voice separation with deep U-Net convolutional networks" (ISMIR 2017).

One network per source. Input: a magnitude patch of the mix, (batch, 1, bins, frames), normalised to
[0, 1] (see `normalise_patch`). Output: a sigmoid mask of the same shape; the estimate is
``mask * input`` and the training loss is ``L1(mask * mix, target)``.

Layers (defaults: 512 bins x 128 frames, 16 base channels):

* encoder: 6 x [Conv2d 5x5 stride 2 -> BatchNorm -> LeakyReLU(0.2)] with 16, 32, 64, 128, 256, 512
  channels; each halves bins and frames (512x128 -> 8x2).
* decoder: 6 x [ConvTranspose2d 5x5 stride 2 -> BatchNorm -> ReLU], dropout 0.5 on the first three;
  from the second on, the input is the previous decoder output concatenated (channel axis) with the
  encoder map of the same size. The last layer has 1 output channel, no BatchNorm, and a sigmoid.

Convolutions followed by BatchNorm have no bias (BatchNorm's shift makes it redundant); the last
transposed convolution keeps its bias.
"""

from __future__ import annotations

import torch
from torch import nn

N_LAYERS = 6
KERNEL = 5


class UNet(nn.Module):
    """Jansson et al. (2017) U-Net mask estimator.

    Args:
        base_channels: channels of the first encoder layer; layer i has base_channels * 2**i (16 -> 512).
        dropout: dropout probability of the first three decoder layers (0.5 in the paper).

    Input bins and frames must be multiples of 64 (six stride-2 halvings).
    """

    def __init__(self, base_channels: int = 16, dropout: float = 0.5) -> None:
        super().__init__()
        chans = [base_channels * 2**i for i in range(N_LAYERS)]
        self.encoder = nn.ModuleList()
        c_in = 1
        for c in chans:
            self.encoder.append(nn.Sequential(
                nn.Conv2d(c_in, c, KERNEL, stride=2, padding=2, bias=False),
                nn.BatchNorm2d(c),
                nn.LeakyReLU(0.2),
            ))
            c_in = c
        self.decoder = nn.ModuleList()
        outs = list(reversed(chans[:-1])) + [1]  # 256, 128, 64, 32, 16, 1
        for i, c_out in enumerate(outs):
            c_in = chans[-1] if i == 0 else 2 * outs[i - 1]  # skip concat doubles the input channels
            deconv = nn.ConvTranspose2d(c_in, c_out, KERNEL, stride=2, padding=2, output_padding=1,
                                        bias=i == len(outs) - 1)
            if i == len(outs) - 1:
                self.decoder.append(nn.Sequential(deconv, nn.Sigmoid()))
            else:
                layers = [deconv, nn.BatchNorm2d(c_out), nn.ReLU()]
                if i < 3:
                    layers.append(nn.Dropout(dropout))
                self.decoder.append(nn.Sequential(*layers))

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        """The soft mask.

        Args:
            x: (batch, 1, bins, frames) float magnitude patch in [0, 1]; bins and frames multiples of 64.

        Returns:
            (batch, 1, bins, frames) mask in (0, 1), same dtype as the computation (bf16 under autocast).
        """
        skips = []
        h = x
        for layer in self.encoder:
            h = layer(h)
            skips.append(h)
        # skips[-1] is the bottleneck, the decoder's first input
        h = self.decoder[0](skips[-1])
        for i, layer in enumerate(self.decoder[1:], start=2):
            h = layer(torch.cat([h, skips[-i]], dim=1))
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Masked magnitude ``mask(x) * x``, shape (batch, 1, bins, frames)."""
        return self.mask(x) * x


def normalise_patch(mix: torch.Tensor, *others: torch.Tensor, eps: float = 1e-8):
    """Scale patches by the maximum of each mix patch, so the mix lies in [0, 1].

    Args:
        mix: (batch, 1, bins, frames) non-negative magnitudes.
        others: tensors of the same shape (targets) scaled by the same factor.

    Returns:
        (mix / m, *others / m, m) where m has shape (batch, 1, 1, 1); silent patches use m = eps.
    """
    m = mix.amax(dim=(1, 2, 3), keepdim=True).clamp_min(eps)
    return (mix / m, *[o / m for o in others], m)


def check_input_size(bins: int, frames: int) -> None:
    """Raise ValueError unless both dimensions survive six stride-2 halvings exactly."""
    step = 2**N_LAYERS
    if bins % step or frames % step or bins <= 0 or frames <= 0:
        raise ValueError(f"U-Net input {bins}x{frames} must be positive multiples of {step} in both dimensions")
