"""Training one reward network on many maps with PyTorch Lightning (one process to many nodes).

:class:`RewardNetModule` is a ``LightningModule`` whose training step is the
negative log-joint (per observation) of a minibatch of maps: each map's reward
comes from the network (:class:`irl.rewards.NeuralReward`), each map is solved by
the exact planner, and gradients reach the network through the planner's adjoint
(:mod:`irl.autodiff`), for every human model and evidence type, through the same
:class:`irl.LogJoint` the other solvers use. Validation on held-out maps logs the
held-out negative log-likelihood per observation (``val_nll``) and, where a map
defines its true reward, the expected value difference of the optimal policy for
the learned reward (``val_evd``).

:class:`MapDataModule` serves :class:`irl.datasets.EvidenceDataset` splits (from a
manifest, or given directly). Everything else is Lightning's: checkpoints and
resume (``ModelCheckpoint``, ``trainer.fit(ckpt_path="last")``), early stopping,
loggers, the progress bar, ``strategy="ddp"`` and ``num_nodes``.

Data parallel training is exact: the loss of a step is the batch's summed
negative log-likelihood divided by its number of observations, so with maps of
equal size and evidence, ``W`` processes with ``batch_size = B / W`` each (DDP
averages their gradients) take the same steps as one process with ``B``
(``shuffle=False``; with shuffling, DDP's sampler draws a different order).

Requires the ``lightning`` extra (``pip install pluggable-irl[lightning]``).

Example:
    >>> import tempfile, torch, irl
    >>> import irl.lightning as irl_pl
    >>> folder = tempfile.mkdtemp()
    >>> path = irl.datasets.simulate_manifest(folder, "objectworld", seeds=[0, 1, 2], n=8, horizon=8,
    ...     env_kwargs={"size": 6, "features": "continuous"}, splits=["train", "train", "val"])
    >>> data = irl_pl.MapDataModule.from_manifest(path, batch_size=2)
    >>> model = irl_pl.RewardNetModule.from_spec("mlp:hidden=8", data.example_mdp(), lr=1e-2)
    >>> trainer = irl_pl.trainer(max_epochs=2, default_root_dir=folder, enable_progress_bar=False)
    >>> trainer.fit(model, data)
    >>> model.reward_model.reward(irl.envs.make("objectworld", size=9, features="continuous", seed=7)).shape
    (81, 5)

References:
    Wulfmeier, Ondrúška & Posner (2015), "Maximum Entropy Deep Inverse
    Reinforcement Learning", arXiv:1507.04888. Falcon et al., PyTorch Lightning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

try:
    import pytorch_lightning as pl
except ImportError as _e:  # pragma: no cover - exercised without the extra
    raise ImportError("irl.lightning needs the 'lightning' extra: pip install 'pluggable-irl[lightning]' "
                      "(the pytorch-lightning distribution)") from _e

from irl.datasets import EvidenceDataset, MapBatch, collate_maps, read_manifest
from irl.rewards import NeuralReward, build_network
from irl.solvers.base import LogJoint, n_observations

__all__ = ["RewardNetModule", "MapDataModule", "trainer", "batch_loss"]


def batch_loss(reward_model: NeuralReward, batch: MapBatch, theta: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, int]:
    """Negative log-likelihood of a minibatch of maps, per observation, and the observation count.

    The log-likelihood is :meth:`irl.LogJoint.log_likelihood` of the batch's evidence
    at the network's parameters (``theta`` defaults to them, as one differentiable
    vector, so gradients reach the network).

    Raises:
        ValueError: a human model in the batch has parameters with priors (train
            those with :class:`irl.MaxEnt` or :class:`irl.BayesianIRL`).
    """
    joint = LogJoint(list(batch.evidence), reward_model)
    if joint.dim != joint.n_reward:
        raise ValueError(f"training a network over many maps needs human models with fixed parameters: "
                         f"{joint.param_names()[joint.n_reward:]} have priors")
    if theta is None:
        theta = torch.nn.utils.parameters_to_vector(reward_model.net.parameters())
    n = sum(n_observations(ev.observation) for ev in batch.evidence)
    return -joint.log_likelihood(theta.to(torch.float64)) / max(n, 1), n


class RewardNetModule(pl.LightningModule):
    """A ``LightningModule`` that trains a :class:`irl.rewards.NeuralReward` on many maps.

    Args:
        reward_model: the reward network; or ``None`` with ``architecture`` (a
            :func:`irl.rewards.build_network` description) and ``input`` to rebuild one
            (that is how :meth:`load_from_checkpoint` restores a built-in architecture).
        architecture: see ``reward_model``.
        input: the network's input layout (``"state"``, ``"state_action"``, ``"grid"``).
        lr: Adam learning rate.
        weight_decay: Adam weight decay (an L2 prior on the weights).
        evd: compute the expected value difference on validation maps with a true reward.

    The hyperparameters (architecture, input, lr, weight_decay) are saved in every
    checkpoint.
    """

    def __init__(self, reward_model: NeuralReward | None = None, *, architecture: dict[str, Any] | None = None,
                 input: str = "state", lr: float = 1e-3, weight_decay: float = 0.0, evd: bool = True) -> None:
        super().__init__()
        if reward_model is None:
            if architecture is None:
                raise ValueError("RewardNetModule needs a reward_model, or an architecture description to build one")
            reward_model = NeuralReward(build_network(architecture), input=input, architecture=architecture)
        self.save_hyperparameters({"architecture": reward_model.architecture, "input": reward_model.input,
                                   "lr": float(lr), "weight_decay": float(weight_decay), "evd": bool(evd)})
        self.reward_model = reward_model
        self.net = reward_model.net  # registered as a submodule: Lightning moves, saves and syncs it

    @classmethod
    def from_spec(cls, spec: str | dict[str, Any], mdp: Any, *, per_action: bool = False, seed: int = 0,
                  **kwargs: Any) -> "RewardNetModule":
        """A module with a built-in network (``"mlp:hidden=64,64"``, ``"cnn:channels=32,32"``) sized for ``mdp``."""
        return cls(NeuralReward.from_spec(spec, mdp, per_action=per_action, seed=seed), **kwargs)

    def forward(self, mdp: Any) -> torch.Tensor:
        """The reward ``(S, A)`` in ``mdp`` (differentiable)."""
        return self.reward_model.reward_for(mdp)

    def training_step(self, batch: MapBatch, batch_idx: int) -> torch.Tensor:
        loss, _ = batch_loss(self.reward_model, batch)
        self.log("train_nll", loss, batch_size=len(batch), prog_bar=True)
        return loss

    def validation_step(self, batch: MapBatch, batch_idx: int) -> None:
        from irl import metrics, plan

        loss, n = batch_loss(self.reward_model, batch)
        self.log("val_nll", loss, batch_size=len(batch), prog_bar=True, sync_dist=True)
        if not self.hparams.evd:
            return
        evds = []
        for mdp in batch.mdps:
            if mdp.true_reward is not None:
                reward = self.reward_model.reward(mdp)
                evds.append(metrics.expected_value_difference(mdp, plan(mdp, reward), mdp.true_reward))
        if evds:
            self.log("val_evd", sum(evds) / len(evds), batch_size=len(evds), prog_bar=True, sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.net.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)


class MapDataModule(pl.LightningDataModule):
    """A ``LightningDataModule`` of maps: a training and an optional validation dataset.

    Args:
        train: the training dataset (:class:`irl.datasets.EvidenceDataset` or any
            sequence of :class:`irl.Evidence`).
        val: the validation dataset (held-out maps), or ``None``.
        batch_size: evidence items per step *per process* (DDP: the global batch is
            ``batch_size * world size``).
        shuffle: shuffle the training items each epoch.
        num_workers: ``DataLoader`` workers that read files.
    """

    def __init__(self, train: Any, val: Any = None, *, batch_size: int = 8, shuffle: bool = True,
                 num_workers: int = 0) -> None:
        super().__init__()
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1: got {batch_size}")
        if len(train) == 0:
            raise ValueError("the training dataset is empty")
        self.train, self.val = train, val
        self.batch_size, self.shuffle, self.num_workers = int(batch_size), bool(shuffle), int(num_workers)

    @classmethod
    def from_manifest(cls, path: str | Path, *, train_split: str = "train", val_split: str | None = "val",
                      **kwargs: Any) -> "MapDataModule":
        """The ``train_split`` and ``val_split`` items of a manifest (no validation if it has none)."""
        items = read_manifest(path)
        val = None
        if val_split is not None and any(it.split == val_split for it in items):
            val = EvidenceDataset(items, val_split)
        return cls(EvidenceDataset(items, train_split), val, **kwargs)

    def example_mdp(self) -> Any:
        """The first training map (to size a network)."""
        return self.train[0].mdp

    def _loader(self, data: Any, shuffle: bool) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(data, batch_size=self.batch_size, shuffle=shuffle,
                                           collate_fn=collate_maps, num_workers=self.num_workers)

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return self._loader(self.train, self.shuffle)

    def val_dataloader(self) -> Any:
        return [] if self.val is None else self._loader(self.val, False)


def trainer(*, max_epochs: int = 10, devices: int | str = 1, strategy: str = "auto", num_nodes: int = 1,
            checkpoint_dir: str | Path | None = None, early_stopping_patience: int | None = None,
            monitor: str = "val_nll", callbacks: Sequence[Any] = (), **kwargs: Any) -> pl.Trainer:
    """A CPU ``pl.Trainer`` with the usual callbacks for reward networks.

    Args:
        max_epochs: epochs.
        devices: processes per node (CPU).
        strategy: ``"auto"``, ``"ddp"`` (one process per device, gloo on CPU) or any Lightning strategy.
        num_nodes: nodes (launch with ``torchrun`` or SLURM; see the Performance docs).
        checkpoint_dir: keep the last and best checkpoints here (``ckpt_path="last"`` resumes).
        early_stopping_patience: stop after this many validations without improving ``monitor``.
        monitor: the metric for the best checkpoint and early stopping.
        callbacks: further callbacks.
        **kwargs: passed to ``pl.Trainer`` (``logger``, ``default_root_dir``, ``enable_progress_bar``...).
    """
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint

    cbs = list(callbacks)
    if checkpoint_dir is not None:
        cbs.append(ModelCheckpoint(dirpath=str(checkpoint_dir), save_last=True, monitor=monitor, mode="min",
                                   save_top_k=1))
    if early_stopping_patience is not None:
        cbs.append(EarlyStopping(monitor=monitor, mode="min", patience=int(early_stopping_patience)))
    kwargs.setdefault("logger", False)
    kwargs.setdefault("enable_model_summary", False)
    kwargs.setdefault("log_every_n_steps", 1)  # each step solves whole maps: steps are few and costly
    if checkpoint_dir is None:
        kwargs.setdefault("enable_checkpointing", False)
    return pl.Trainer(accelerator="cpu", devices=devices, strategy=strategy, num_nodes=num_nodes,
                      max_epochs=max_epochs, callbacks=cbs, **kwargs)
