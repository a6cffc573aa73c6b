"""Train a reward network on a manifest with Lightning (run as a script by tests/test_lightning.py).

Usage: python _ddp_train.py MANIFEST OUT DEVICES BATCH_SIZE MAX_EPOCHS
"""

import sys

import torch

import irl.lightning as irl_pl

if __name__ == "__main__":
    manifest, out, devices, batch, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    torch.set_num_threads(1)
    data = irl_pl.MapDataModule.from_manifest(manifest, batch_size=batch, shuffle=False)
    model = irl_pl.RewardNetModule.from_spec("mlp:hidden=6", data.example_mdp(), lr=0.05, seed=0)
    trainer = irl_pl.trainer(max_epochs=epochs, devices=devices, strategy="ddp" if devices > 1 else "auto",
                             enable_progress_bar=False, num_sanity_val_steps=0, limit_val_batches=0,
                             default_root_dir=str(out) + ".logs")
    trainer.fit(model, data)
    # what the calling test relies on: every process took part, training stepped, the weights are numbers
    assert trainer.world_size == devices, f"world size {trainer.world_size}, expected {devices}"
    assert trainer.global_step > 0, "no optimiser step was taken"
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters()), "non-finite weights after training"
    if trainer.global_rank == 0:
        model.reward_model.save(out)
        print("world_size", trainer.world_size, "steps", trainer.global_step)
