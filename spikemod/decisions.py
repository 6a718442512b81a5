"""Who decides: the competitive max of separate readouts, sample by sample.

For a trained network with separate readouts, over the test pairs (the ``inputs/test`` stream of
:mod:`spikemod.seeding`, as every measurement): which module decides each head at the last step,
the margin between the deciding module's largest logit and the next module's, and, for two
modules with separate input, how often the deciding module is the answer holder, the module that
sees the digit the target names (T′ = D0 when the parities differ, else D1: module 0 holds T′
when they differ; T″ the other way round). A module that abstains, keeping its logits low when it
does not hold the answer, lets the holder decide.
"""

from __future__ import annotations

from typing import Dict

import numpy as np
import torch

from . import seeding
from .config import RunConfig
from .dynamics import competitive_max
from .task import network_input

__all__ = ["answer_holder", "decision_statistics"]


def answer_holder(digits: torch.Tensor, targets: str) -> torch.Tensor:
    """The module [B, H] that sees the digit each head's target names (two modules, separate input)."""
    differ = (digits[:, 0] + digits[:, 1]) % 2 == 1
    parity = torch.where(differ, 0, 1)  # T′: D0 when the parities differ
    columns = {"parity": [parity], "inverse": [1 - parity], "both": [parity, 1 - parity]}[targets]
    return torch.stack(columns, dim=1)


@torch.no_grad()
def decision_statistics(model: torch.nn.Module, dataset, config: RunConfig) -> Dict[str, np.ndarray]:
    """``deciding_share`` [H, M] (fraction of samples each module decides), ``margin`` [H] (mean
    gap between the largest logit of the deciding module and of the runner-up module) and
    ``holder_decides`` [H] (fraction decided by the answer holder; NaN unless two modules with
    separate input). Needs separate readouts."""
    if config.model.readout_scheme != "separate":
        raise ValueError("decision statistics describe the competitive max of separate readouts")
    generator = seeding.generator(config.seed, seeding.inputs_purpose(dataset.train))
    was_training = model.training
    model.eval()
    shares, margins, holders, count = 0.0, 0.0, 0.0, 0
    two_separate = config.model.n_modules == 2 and config.model.input_scheme == "separate"
    try:
        for batch in dataset.batches(config.train.batch_size):
            x, static = network_input(batch.images, config, generator)
            module_logits = model(x.to(model.device), static=static).module_logits[-1].cpu()  # [B, H, M, C]
            _, deciding = competitive_max(module_logits)  # [B, H]
            best = module_logits.amax(dim=-1).topk(2, dim=-1).values  # [B, H, 2]
            shares = shares + torch.nn.functional.one_hot(deciding, model.n_modules).double().sum(0)
            margins = margins + (best[..., 0] - best[..., 1]).double().sum(0)
            if two_separate:
                holders = holders + (deciding == answer_holder(batch.digits, config.task.targets)).double().sum(0)
            count += len(batch.digits)
    finally:
        model.train(was_training)
    holder = (holders / count).numpy() if two_separate else np.full(model.n_heads, np.nan)
    return {"deciding_share": (shares / count).numpy(), "margin": (margins / count).numpy(), "holder_decides": holder}
