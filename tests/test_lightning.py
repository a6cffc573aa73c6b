"""Many-map training: the manifest dataset, the collate, the LightningModule, checkpoints and DDP."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("pytorch_lightning")

import demos  # noqa: E402
import human_models as hm  # noqa: E402
import irl  # noqa: E402
import priors  # noqa: E402
import irl.lightning as irl_pl  # noqa: E402
from irl.datasets import (EvidenceDataset, ManifestError, MapBatch, collate_maps, read_manifest,  # noqa: E402
                          simulate_manifest)
from irl.rewards import NeuralReward  # noqa: E402

HERE = Path(__file__).resolve().parent
SMALL = {"size": 5, "features": "continuous", "placement_prob": 0.2}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    folder = tmp_path_factory.mktemp("maps")
    return simulate_manifest(folder, "objectworld", seeds=[0, 1, 2, 3, 4], n=4, horizon=8, env_kwargs=SMALL,
                             splits=["train"] * 4 + ["val"], seed=0)


def test_manifest_json_and_csv_give_the_same_items(manifest, tmp_path):
    items = read_manifest(manifest)
    assert [it.split for it in items] == ["train"] * 4 + ["val"]
    assert items[0].env == "objectworld" and dict(items[0].env_kwargs)["seed"] == 0
    doc = json.loads(manifest.read_text())
    rows = ["env,env_kwargs,evidence,human,split"]
    for it in doc["items"]:
        kw = json.dumps(it["env_kwargs"]).replace('"', '""')
        rows.append(f'{it["env"]},"{kw}",{manifest.parent / it["evidence"][0]},boltzmann,{it["split"]}')
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    csv_items = read_manifest(tmp_path / "m.csv")
    assert [(i.env, i.env_kwargs, i.evidence, i.split) for i in csv_items] == \
        [(i.env, i.env_kwargs, i.evidence, i.split) for i in items]
    train = EvidenceDataset(manifest, "train")
    assert len(train) == 4 and train[1].mdp is train[1].mdp  # built once, then shared
    assert train[2].mdp.name.endswith("seed2") and len(train[2].observation) == 4


@pytest.mark.parametrize("doc, message", [
    ({"format": "other"}, "'format' must be 'pluggable-irl/manifest'"),
    ({"format": "pluggable-irl/manifest", "items": []}, "lists no maps"),
    ({"format": "pluggable-irl/manifest", "items": [{"env": "objectworld"}]}, "'evidence' must be a list"),
    ({"format": "pluggable-irl/manifest", "items": [{"env": "x", "mdp": "y.npz", "evidence": ["a"]}]},
     "exactly one of 'env' or 'mdp'"),
    ({"format": "pluggable-irl/manifest", "items": [{"env": "x", "evidence": ["a"], "colour": 1}]},
     "unknown keys ['colour']"),
])
def test_manifest_errors_name_the_rule(tmp_path, doc, message):
    (tmp_path / "m.json").write_text(json.dumps(doc))
    with pytest.raises(ManifestError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_manifest(tmp_path / "m.json")


def test_a_file_that_is_not_a_manifest_is_named(tmp_path):
    missing = tmp_path / "none.json"
    with pytest.raises(FileNotFoundError, match=f"{re.escape(str(missing))}: no such manifest file"):
        read_manifest(missing)
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(ManifestError, match=r"list.json: not a manifest: 'format' must be 'pluggable-irl/manifest' "
                                            r"in a JSON object; found a JSON list"):
        read_manifest(tmp_path / "list.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "pluggable-irl/trajectories", "items": []}))
    with pytest.raises(ManifestError, match="other.json: not a manifest: 'format' must be 'pluggable-irl/manifest'; "
                                            "found 'pluggable-irl/trajectories'"):
        read_manifest(tmp_path / "other.json")
    (tmp_path / "bin.json").write_bytes(b"\x80\x81\x00")
    with pytest.raises(ManifestError, match="bin.json: not a manifest: expected UTF-8 text"):
        read_manifest(tmp_path / "bin.json")
    (tmp_path / "items.json").write_text(json.dumps({"format": "pluggable-irl/manifest", "items": [3]}))
    with pytest.raises(ManifestError, match="items.json: item 0: each item must be a JSON object"):
        read_manifest(tmp_path / "items.json")


def test_a_manifest_listing_missing_files_is_refused(manifest, tmp_path):
    doc = json.loads(manifest.read_text())
    for item in doc["items"]:  # absolute paths: the copy lives in another folder
        item["evidence"] = [str(manifest.parent / e) for e in item["evidence"]]
    doc["items"][1]["evidence"].append("gone.npz")
    (tmp_path / "m.json").write_text(json.dumps(doc))
    with pytest.raises(ManifestError, match=f"m.json: item 1: listed file\\(s\\) not found: "
                                            f"{re.escape(str(tmp_path / 'gone.npz'))} \\(paths are relative"):
        read_manifest(tmp_path / "m.json")
    (tmp_path / "m.csv").write_text("env,evidence\nobjectworld,gone.npz\n")
    with pytest.raises(ManifestError, match="m.csv: row 2: listed file"):
        read_manifest(tmp_path / "m.csv")


def test_mdp_files_go_through_one_loader(tmp_path, monkeypatch):
    monkeypatch.delattr(irl.TabularMDP, "load", raising=False)
    for name in ("room.npz", "d.npz"):  # the manifest's files must exist; their content is not read here
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "m.json").write_text(json.dumps({"format": "pluggable-irl/manifest",
                                                 "items": [{"mdp": "room.npz", "evidence": ["d.npz"]}]}))
    ds = EvidenceDataset(tmp_path / "m.json")
    with pytest.raises(ManifestError, match="cannot read MDP files"):
        ds[0]
    monkeypatch.setattr(irl.TabularMDP, "load", staticmethod(lambda p: irl.envs.make("objectworld", **SMALL)),
                        raising=False)
    assert irl.datasets.load_mdp(tmp_path / "room.npz").n_states == 25


def test_collate_batches_maps_of_different_sizes():
    items = []
    for size, seed in ((4, 0), (6, 1), (4, 2)):
        env = irl.envs.make("objectworld", size=size, features="continuous", seed=seed)
        data = demos.simulate(env, hm.Boltzmann(1.0), env.true_reward, n=3, seed=seed, horizon=6)
        items.append(irl.Evidence(env, data, hm.Boltzmann(1.0)))
    batch = collate_maps(items)
    assert isinstance(batch, MapBatch) and len(batch) == 3 and len(batch.mdps) == 3
    model = NeuralReward.from_spec("cnn:channels=3,kernel=3", items[0].mdp, seed=0)
    with torch.no_grad():
        loss, n = irl_pl.batch_loss(model, batch)
        separate = sum(float(ev.log_likelihood(model.reward_for(ev.mdp))) for ev in items)
    assert n == 3 * 3 * 6 and float(loss) == pytest.approx(-separate / n, rel=1e-12)  # maps x demos x steps
    with pytest.raises(TypeError, match="non-empty list of irl.Evidence"):
        collate_maps([])


def test_data_parallel_gradient_equals_the_full_batch_gradient(manifest):
    """What DDP computes: the mean of the ranks' gradients of the per-observation loss (fast, in one process)."""
    ds = EvidenceDataset(manifest, "train")
    model = NeuralReward.from_spec("mlp:hidden=6", ds[0].mdp, seed=0)

    def grad(idx):
        model.net.zero_grad()
        irl_pl.batch_loss(model, collate_maps([ds[i] for i in idx]))[0].backward()
        return torch.nn.utils.parameters_to_vector(p.grad for p in model.net.parameters()).clone()

    full = grad([0, 1, 2, 3])
    ranks = (grad([0, 2]) + grad([1, 3])) / 2  # DistributedSampler with 2 ranks: rank r gets items r, r + 2
    torch.testing.assert_close(ranks, full, rtol=1e-12, atol=1e-14)


def _fit(manifest, root, epochs, ckpt=None, resume=None):
    data = irl_pl.MapDataModule.from_manifest(manifest, batch_size=2, shuffle=False)
    model = irl_pl.RewardNetModule.from_spec("mlp:hidden=6", data.example_mdp(), lr=0.05, seed=0)
    trainer = irl_pl.trainer(max_epochs=epochs, checkpoint_dir=ckpt, default_root_dir=str(root),
                             enable_progress_bar=False)
    trainer.fit(model, data, ckpt_path=resume)
    return model, trainer


@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty:UserWarning")  # resuming there
def test_training_improves_held_out_likelihood_and_checkpoints_resume(manifest, tmp_path):
    data = irl_pl.MapDataModule.from_manifest(manifest, batch_size=2, shuffle=False)
    untrained = irl_pl.RewardNetModule.from_spec("mlp:hidden=6", data.example_mdp(), lr=0.05, seed=0)
    val = collate_maps(list(data.val))
    before = float(irl_pl.batch_loss(untrained.reward_model, val)[0].detach())
    straight, tr = _fit(manifest, tmp_path / "a", 4)
    after = float(tr.callback_metrics["val_nll"])
    assert after < before - 0.05
    assert np.isfinite(float(tr.callback_metrics["val_evd"]))
    # 2 epochs, then resume from the last checkpoint to 4: the same weights as 4 epochs in one go
    _fit(manifest, tmp_path / "b", 2, ckpt=tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "last.ckpt").exists()
    resumed, tr2 = _fit(manifest, tmp_path / "b", 4, ckpt=tmp_path / "ckpt", resume="last")
    assert tr2.global_step == tr.global_step
    for a, b in zip(straight.net.parameters(), resumed.net.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    # checkpoints are safe to read (no pickled code) and rebuild the network from the saved hyperparameters
    ckpt = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert ckpt["hyper_parameters"]["architecture"]["kind"] == "mlp"
    again = irl_pl.RewardNetModule.load_from_checkpoint(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    env = irl.envs.make("objectworld", size=7, features="continuous", seed=9)
    np.testing.assert_allclose(again.reward_model.reward(env), resumed.reward_model.reward(env), atol=1e-12)


def test_early_stopping_and_bad_human_parameters(manifest, tmp_path):
    data = irl_pl.MapDataModule.from_manifest(manifest, batch_size=4, shuffle=False)
    model = irl_pl.RewardNetModule.from_spec("mlp:hidden=6", data.example_mdp(), lr=5.0, seed=0)
    trainer = irl_pl.trainer(max_epochs=30, early_stopping_patience=1, default_root_dir=str(tmp_path),
                             enable_progress_bar=False)
    trainer.fit(model, data)
    assert trainer.early_stopping_callback is not None
    assert trainer.current_epoch < 30 and trainer.early_stopping_callback.stopped_epoch > 0
    ev = data.train[0]
    bad = irl.Evidence(ev.mdp, ev.observation, hm.Boltzmann(beta=priors.LogNormal(0.0, 1.0)))
    with pytest.raises(ValueError, match="fixed parameters"):
        irl_pl.batch_loss(model.reward_model, collate_maps([bad]))


def _run(manifest, out, devices, batch, epochs):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    res = subprocess.run([sys.executable, str(HERE / "_ddp_train.py"), str(manifest), str(out), str(devices),
                          str(batch), str(epochs)], capture_output=True, text=True, timeout=600, env=env,
                         cwd=str(Path(out).parent))
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


@pytest.mark.slow
def test_ddp_two_processes_equal_one_process_with_the_same_global_batch(manifest, tmp_path):
    """2 CPU processes (gloo) x batch 2 == 1 process x batch 4, within 1e-6 (float64; Adam, 3 steps)."""
    out2 = _run(manifest, tmp_path / "two.pt", 2, 2, 3)
    out1 = _run(manifest, tmp_path / "one.pt", 1, 4, 3)
    assert "world_size 2 steps 3" in out2 and "world_size 1 steps 3" in out1
    a = torch.load(tmp_path / "one.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "two.pt", weights_only=True)["state_dict"]
    init = NeuralReward.from_spec("mlp:hidden=6", irl.envs.make("objectworld", **SMALL), seed=0).net.state_dict()
    assert any(not torch.allclose(a[k], init[k]) for k in a)  # training moved the weights
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)


@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty:UserWarning")
def test_cli_train_saves_the_network_and_resumes(manifest, tmp_path):
    from typer.testing import CliRunner

    from irl.cli import app

    runner = CliRunner()
    args = ["train", str(manifest), "--reward-model", "cnn:channels=4,kernel=3", "--batch-size", "2", "--lr", "0.05",
            "--quiet", "--out", str(tmp_path / "net.pt"), "--log-dir", str(tmp_path / "logs")]
    res = runner.invoke(app, args + ["--max-epochs", "1"])
    assert res.exit_code == 0, res.output
    assert "Trained 1 epochs (2 steps, 1 process(es))" in res.output and "val_nll" in res.output
    assert (tmp_path / "net.ckpt" / "last.ckpt").exists() and list((tmp_path / "logs").rglob("metrics.csv"))
    first = NeuralReward.load(tmp_path / "net.pt")
    assert first.input == "grid"
    res = runner.invoke(app, args + ["--max-epochs", "2", "--ckpt-path", "last"])
    assert res.exit_code == 0, res.output
    assert "Trained 2 epochs (4 steps" in res.output  # resumed: one more epoch on top of the checkpoint
    env = irl.envs.make("objectworld", size=8, features="continuous", seed=11)
    assert not np.allclose(NeuralReward.load(tmp_path / "net.pt").reward(env), first.reward(env))
    res = runner.invoke(app, ["train", str(manifest), "--reward-model", "mlp:depth=2", "--out", str(tmp_path / "x.pt")])
    assert res.exit_code == 2 and "unknown mlp option 'depth'" in res.output
    res = runner.invoke(app, ["train", str(tmp_path / "none.json"), "--out", str(tmp_path / "x.pt")])
    assert res.exit_code == 2 and res.stderr.strip() == f"Error: {tmp_path / 'none.json'}: no such manifest file"
    (tmp_path / "list.json").write_text("[]")
    res = runner.invoke(app, ["train", str(tmp_path / "list.json"), "--out", str(tmp_path / "x.pt")])
    assert res.exit_code == 2 and f"Error: {tmp_path / 'list.json'}: not a manifest" in res.stderr
    (tmp_path / "gone.json").write_text(json.dumps({"format": "pluggable-irl/manifest",
                                                    "items": [{"env": "objectworld", "evidence": ["gone.npz"]}]}))
    res = runner.invoke(app, ["train", str(tmp_path / "gone.json"), "--out", str(tmp_path / "x.pt")])
    assert res.exit_code == 2 and "item 0: listed file(s) not found" in res.stderr and "gone.npz" in res.stderr


def test_cli_fit_with_a_network_reward(manifest, tmp_path):
    from typer.testing import CliRunner

    from irl.cli import app

    env = irl.envs.make("objectworld")  # what --env objectworld builds: 32x32, seed 0
    data = tmp_path / "demos.npz"
    demos.simulate(env, hm.Boltzmann(1.0), env.true_reward, n=3, seed=0, horizon=8).save(data)
    res = CliRunner().invoke(app, ["fit", str(data), "--env", "objectworld", "--reward-model", "mlp:hidden=4",
                                   "--max-iter", "5", "--quiet", "--out", str(tmp_path / "r.npz")])
    assert res.exit_code == 0, res.output
    model = NeuralReward.load(tmp_path / "r.net.pt")
    est = irl.RewardEstimate.load(tmp_path / "r.npz")
    np.testing.assert_allclose(model.reward(env), est.reward, atol=1e-10)
