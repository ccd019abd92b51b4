"""Parameter accounting: trainable, effective (masked-out synapses excluded) and frozen counts."""

from __future__ import annotations

from torch import nn


def count_params(model: nn.Module) -> dict[str, int]:
    """``{"trainable", "effective", "buffers"}`` for any module.

    * trainable: entries of parameters with ``requires_grad``;
    * effective: trainable minus entries that cannot influence the output because the wiring masks
      them out (modules report those through a ``masked_out_params()`` method: LTC and wired CfC cells);
    * buffers: frozen entries (buffers such as wiring masks, plus parameters without gradients).
    """
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    buffers = sum(b.numel() for b in model.buffers())
    masked = 0
    for module in model.modules():
        fn = getattr(module, "masked_out_params", None)
        if callable(fn):
            masked += int(fn())
    return {
        "trainable": int(trainable),
        "effective": int(trainable - masked),
        "buffers": int(buffers + frozen),
    }
