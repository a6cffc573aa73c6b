"""Shared test settings."""

import torch

# The tensors in these tests are small: one thread avoids oversubscribing the 2-core CI machine
# (measured 8-10x faster than torch's default thread pool under load).
torch.set_num_threads(1)
