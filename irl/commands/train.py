"""``irl train``: one reward network on many maps, trained with PyTorch Lightning.

Loaded by :mod:`irl.cli`, which registers the commands on its app (import ``irl.cli``, not this module).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import typer

from irl.cli import (CLIError, QUIET_OPTION, _check_writable, _console, _handles_errors, _make_network, _one_line,
                     seed_option)


@_handles_errors
def train(
    manifest: Path = typer.Argument(..., help="A manifest of maps and their evidence (.json or .csv), "
                                              "e.g. maps/manifest.json."),
    reward_model: str = typer.Option("mlp:hidden=64,64", "--reward-model",
                                     help="The network: mlp:hidden=64,64 or cnn:channels=32,32,kernel=3, "
                                          "e.g. --reward-model cnn:channels=16,16."),
    per_action: bool = typer.Option(False, "--per-action", help="One reward per action instead of per state, "
                                                                "e.g. --per-action."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Evidence items per step and process, "
                                                                  "e.g. --batch-size 4."),
    lr: float = typer.Option(1e-3, "--lr", min=0.0, help="Adam learning rate, e.g. --lr 0.01."),
    weight_decay: float = typer.Option(0.0, "--weight-decay", min=0.0, help="Adam weight decay, e.g. "
                                                                            "--weight-decay 1e-4."),
    max_epochs: int = typer.Option(10, "--max-epochs", min=1, help="Epochs, e.g. --max-epochs 50."),
    devices: int = typer.Option(1, "--devices", min=1, help="CPU processes per node, e.g. --devices 2."),
    strategy: str = typer.Option("auto", "--strategy", help="Lightning strategy, e.g. --strategy ddp."),
    num_nodes: int = typer.Option(1, "--num-nodes", min=1, help="Nodes (launched by torchrun or SLURM), "
                                                                "e.g. --num-nodes 2."),
    checkpoint_dir: Optional[Path] = typer.Option(None, "--checkpoint-dir",
                                                  help="Checkpoints (last and best); default NAME.ckpt beside "
                                                       "--out, e.g. --checkpoint-dir runs/ckpt."),
    ckpt_path: Optional[str] = typer.Option(None, "--ckpt-path",
                                            help="Resume: 'last' (the last checkpoint in --checkpoint-dir) or a "
                                                 "checkpoint file, e.g. --ckpt-path last."),
    patience: Optional[int] = typer.Option(None, "--patience", min=0,
                                           help="Early stopping after this many epochs without a better held-out "
                                                "log-likelihood (needs 'val' maps), e.g. --patience 5."),
    log_dir: Optional[Path] = typer.Option(None, "--log-dir", help="Write metrics with Lightning's CSV logger "
                                                                   "here, e.g. --log-dir runs/logs."),
    seed: int = seed_option(0, "Seed of the initial weights, e.g. --seed 1."),
    quiet: bool = QUIET_OPTION,
    out: Path = typer.Option(..., "--out", "-o", help="Where to save the trained network, e.g. --out net.pt."),
) -> None:
    """Train one reward network on many maps with PyTorch Lightning.

    Each step is the negative log-likelihood of a minibatch of maps (exact planner,
    gradients through its adjoint); maps in the manifest's 'val' split are held out
    (log-likelihood and expected value difference). Needs the lightning extra.

    Example: irl train maps/manifest.json --reward-model cnn:channels=16,16 --devices 2 --strategy ddp --max-epochs 20 --out net.pt
    """
    _check_writable(out, suffixes=(".pt", ".pth"))
    try:
        import irl.lightning as irl_pl
    except ImportError as e:
        raise CLIError(_one_line(e)) from None
    from irl.datasets import ManifestError

    try:
        data = irl_pl.MapDataModule.from_manifest(manifest, batch_size=batch_size)
    except (ManifestError, OSError) as e:
        raise CLIError(f"{manifest}: {_one_line(e)}" if str(manifest) not in str(e) else _one_line(e), code=2) from None
    net = _make_network(reward_model, data.example_mdp(), per_action=per_action, seed=seed)
    module = irl_pl.RewardNetModule(net, lr=lr, weight_decay=weight_decay)
    ckpt_dir = checkpoint_dir or out.with_name(f"{out.stem}.ckpt")
    if ckpt_path == "last" and not (ckpt_dir / "last.ckpt").exists():
        raise CLIError(f"--ckpt-path last: no checkpoint in {ckpt_dir} to resume from", code=2)
    logger: Any = False
    if log_dir is not None:
        from pytorch_lightning.loggers import CSVLogger

        logger = CSVLogger(str(log_dir), name="irl-train")
    monitor = "val_nll" if data.val is not None else "train_nll"
    trainer = irl_pl.trainer(max_epochs=max_epochs, devices=devices, strategy=strategy, num_nodes=num_nodes,
                             checkpoint_dir=ckpt_dir, early_stopping_patience=patience, monitor=monitor,
                             logger=logger, enable_progress_bar=not quiet, default_root_dir=str(ckpt_dir),
                             **({} if data.val is not None else {"limit_val_batches": 0}))
    t0 = time.perf_counter()
    trainer.fit(module, data, ckpt_path=ckpt_path)
    if trainer.global_rank != 0:
        return
    net.save(out)
    metrics = ", ".join(f"{k} {float(v):.4f}" for k, v in sorted(trainer.callback_metrics.items()))
    _console().print(f"Trained {trainer.current_epoch} epochs ({trainer.global_step} steps, {trainer.world_size} "
                     f"process(es)) in {time.perf_counter() - t0:.1f} s; {metrics}", soft_wrap=True)
    _console().print(f"Network saved to {out} (irl.rewards.NeuralReward.load); checkpoints in {ckpt_dir}",
                     soft_wrap=True)


def register(app: Any) -> None:
    """Add this module's commands to ``app``."""
    app.command()(train)
