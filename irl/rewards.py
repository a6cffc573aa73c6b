"""Reward models: maps from parameters ``theta`` to rewards ``r(s, a)``.

A reward model is called on a parameter tensor ``(..., P)`` and returns a reward
tensor ``(..., S, A)``; autograd carries gradients back to ``theta``.
"""

from __future__ import annotations

import weakref
from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch

from irl.mdp import MDPValidationError, TabularMDP

__all__ = ["RewardModel", "TabularReward", "LinearReward", "NeuralReward", "default_reward_model", "build_network",
           "parse_network_spec"]


class RewardModel(ABC):
    """Base class: ``n_params``, ``__call__(theta) -> (..., S, A)`` and parameter names.

    ``homogeneous`` declares ``reward(c * theta) = c * reward(theta)`` for every
    ``c > 0`` (linear and tabular models; not a model with a fixed offset or a
    neural network), which lets Bayesian IRL sample the reward in units of the
    human's temperature.

    ``linear`` tells solvers that the reward is linear in ``theta`` (so a
    Boltzmann log-likelihood is concave in it and one optimiser start suffices).
    """

    n_states: int
    n_actions: int
    homogeneous: bool = False
    linear: bool = False
    #: whether the reward depends on the MDP it is evaluated in (features of each map), so that
    #: :class:`irl.LogJoint` asks :meth:`reward_for` once per MDP rather than once in total
    per_mdp: bool = False

    @property
    @abstractmethod
    def n_params(self) -> int:
        """Number of parameters ``P``."""

    @abstractmethod
    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        """Reward ``(..., S, A)`` for parameters ``(..., P)``."""

    def param_names(self) -> list[str]:
        """Readable names of the parameters (for summaries)."""
        return [f"theta[{i}]" for i in range(self.n_params)]

    def initial_theta(self) -> torch.Tensor:
        """Where optimisers start: zeros ``(P,)`` (a network starts at its initial weights)."""
        return torch.zeros(self.n_params, dtype=torch.float64)

    def reward_for(self, mdp: TabularMDP, theta: torch.Tensor) -> torch.Tensor:
        """Reward ``(..., S, A)`` in ``mdp``; the same for every MDP unless ``per_mdp``."""
        return self(theta)

    def _check(self, theta: Any) -> torch.Tensor:
        t = theta if isinstance(theta, torch.Tensor) else torch.from_numpy(np.array(theta, dtype=np.float64))
        if t.ndim < 1 or t.shape[-1] != self.n_params:
            raise MDPValidationError(f"{type(self).__name__} expects parameters of shape (..., {self.n_params}): "
                                     f"got {tuple(t.shape)}")
        return t

    def reward_array(self, theta: Any) -> np.ndarray:
        """The reward as a numpy array ``(..., S, A)``."""
        with torch.no_grad():
            return self(self._check(theta)).cpu().numpy()


class TabularReward(RewardModel):
    """One parameter per state (``state_only=True``) or per state-action pair.

    Example:
        >>> import torch, irl
        >>> m = irl.rewards.TabularReward(3, 2)
        >>> m(torch.tensor([1.0, 2.0, 3.0])).shape
        torch.Size([3, 2])
    """

    homogeneous = True
    linear = True

    def __init__(self, n_states: int, n_actions: int, *, state_only: bool = True) -> None:
        self.n_states, self.n_actions, self.state_only = int(n_states), int(n_actions), bool(state_only)

    @property
    def n_params(self) -> int:
        return self.n_states if self.state_only else self.n_states * self.n_actions

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        t = self._check(theta)
        if self.state_only:
            return t[..., :, None].expand(*t.shape, self.n_actions)
        return t.reshape(*t.shape[:-1], self.n_states, self.n_actions)

    def param_names(self) -> list[str]:
        if self.state_only:
            return [f"r[s={s}]" for s in range(self.n_states)]
        return [f"r[s={s},a={a}]" for s in range(self.n_states) for a in range(self.n_actions)]


class LinearReward(RewardModel):
    """``r(s, a) = phi(s, a) . theta`` with features ``(S, F)`` or ``(S, A, F)``.

    Example:
        >>> import irl
        >>> env = irl.envs.make("gridworld-5x5")
        >>> m = irl.rewards.LinearReward.from_mdp(env)
        >>> m.n_params == env.n_features
        True
    """

    homogeneous = True
    linear = True

    def __init__(self, features: Any, n_actions: int | None = None, *, names: list[str] | None = None) -> None:
        f = np.asarray(features, dtype=np.float64)
        if f.ndim == 2:
            if n_actions is None:
                raise MDPValidationError("LinearReward with state features (S, F) needs n_actions")
            f = np.broadcast_to(f[:, None, :], (f.shape[0], int(n_actions), f.shape[1]))
        if f.ndim != 3:
            raise MDPValidationError(f"features must have shape (S, F) or (S, A, F): got {f.shape}")
        # a copy: features of an MDP are read-only, which torch.from_numpy warns about
        self.features = torch.from_numpy(np.array(f, dtype=np.float64, order="C"))
        self.n_states, self.n_actions = f.shape[0], f.shape[1]
        self._names = names

    @classmethod
    def from_mdp(cls, mdp: TabularMDP) -> "LinearReward":
        """The linear model on the MDP's own features; in other MDPs it reads *their* features.

        So one weight vector scores evidence from several maps with the same feature
        layout (``per_mdp``), each through its own features.
        """
        if mdp.features is None:
            raise MDPValidationError(f"MDP {mdp.name!r} has no features; use TabularReward instead")
        model = cls(mdp.features, mdp.n_actions, names=None if mdp.feature_names is None else list(mdp.feature_names))
        model._home, model.per_mdp = mdp, True  # private: not part of the model's identity (run fingerprints)
        return model

    def check_layout(self, mdp: TabularMDP) -> None:
        """Raise unless ``mdp`` has features of this model's length (and its number of actions)."""
        F = self.n_params
        if mdp.features is None or mdp.features.shape[-1] != F or mdp.n_actions != self.n_actions:
            got = None if mdp.features is None else mdp.features.shape
            raise MDPValidationError(f"the linear reward reads {F} features and {self.n_actions} actions: MDP "
                                     f"{mdp.name!r} has features {got} and {mdp.n_actions} actions")

    def reward_for(self, mdp: TabularMDP, theta: torch.Tensor) -> torch.Tensor:
        if mdp is getattr(self, "_home", mdp):
            return self(theta)
        others = self.__dict__.setdefault("_others", weakref.WeakKeyDictionary())  # MDP -> its linear model
        if mdp not in others:
            self.check_layout(mdp)
            others[mdp] = LinearReward(mdp.features, mdp.n_actions)
        return others[mdp](theta)

    @property
    def n_params(self) -> int:
        return int(self.features.shape[-1])

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        t = self._check(theta).to(self.features.dtype)
        return torch.einsum("saf,...f->...sa", self.features, t)

    def param_names(self) -> list[str]:
        return list(self._names) if self._names else [f"w[{i}]" for i in range(self.n_params)]


def default_reward_model(mdp: TabularMDP) -> RewardModel:
    """Linear in the MDP's features if it has any, else a tabular state reward."""
    if mdp.features is not None:
        return LinearReward.from_mdp(mdp)
    return TabularReward(mdp.n_states, mdp.n_actions)


# ---------------------------------------------------------------------------------------------- neural rewards

#: Input layouts of a :class:`NeuralReward` network.
NEURAL_INPUTS = ("state", "state_action", "grid")
_ACTIVATIONS = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "elu": torch.nn.ELU, "softplus": torch.nn.Softplus}
_NETWORK_FORMAT = "pluggable-irl/neural-reward"
_NETWORK_VERSION = 1


def _int_list(name: str, value: Any) -> list[int]:
    vals = [value] if isinstance(value, (int, np.integer)) else list(value)
    if not vals or any(int(v) != v or int(v) < 1 for v in vals):
        raise ValueError(f"network {name} must be positive integers: got {value!r}")
    return [int(v) for v in vals]


def build_network(architecture: dict[str, Any]) -> torch.nn.Module:
    """Build a built-in reward network from its JSON description.

    Two kinds, chosen by ``architecture["kind"]``:

    * ``"mlp"``: ``in_features`` -> ``hidden`` layers (activation) -> ``out`` (per state or state-action);
    * ``"cnn"``: a fully convolutional net over maps ``(C, H, W)``: ``in_channels`` -> ``channels``
      (``kernel`` x ``kernel`` convolutions, padding keeps ``H, W``) -> a 1x1 convolution to ``out``.

    ``out`` is 1 (a state reward) or ``A`` (one reward per action). Only these names
    are built: a name read from a file never selects code beyond this table.

    Args:
        architecture: ``{"kind": "mlp", "in_features": F, "hidden": [64, 64], "out": 1,
            "activation": "relu"}`` or ``{"kind": "cnn", "in_channels": C, "channels": [32, 32],
            "kernel": 3, "out": 1, "activation": "relu"}``.

    Raises:
        ValueError: unknown kind or activation (listing the known ones), or bad sizes.

    Example:
        >>> net = build_network({"kind": "mlp", "in_features": 4, "hidden": [8]})
        >>> net(torch.zeros(3, 4)).shape
        torch.Size([3, 1])
    """
    arch = dict(architecture)
    kind = arch.get("kind")
    act_name = arch.get("activation", "relu")
    if act_name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {act_name!r}; known: {', '.join(_ACTIVATIONS)}")
    act = _ACTIVATIONS[act_name]
    out = _int_list("out", arch.get("out", 1))[0]
    layers: list[torch.nn.Module] = []
    if kind == "mlp":
        sizes = _int_list("in_features", arch["in_features"]) + _int_list("hidden", arch.get("hidden", [64, 64]))
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [torch.nn.Linear(a, b), act()]
        layers.append(torch.nn.Linear(sizes[-1], out))
    elif kind == "cnn":
        k = _int_list("kernel", arch.get("kernel", 3))[0]
        if k % 2 == 0:
            raise ValueError(f"network kernel must be odd (padding keeps the map size): got {k}")
        sizes = _int_list("in_channels", arch["in_channels"]) + _int_list("channels", arch.get("channels", [32, 32]))
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [torch.nn.Conv2d(a, b, k, padding=k // 2), act()]
        layers.append(torch.nn.Conv2d(sizes[-1], out, 1))
    else:
        raise ValueError(f"unknown network kind {kind!r}; known: mlp, cnn")
    return torch.nn.Sequential(*layers)


def parse_network_spec(spec: str) -> dict[str, Any]:
    """``"mlp:hidden=64,64"`` or ``"cnn:channels=32,32,kernel=3"`` -> an architecture dict without sizes.

    Values after a key up to the next ``key=`` form a list; ``activation`` is a name.
    The input size is filled in by :meth:`NeuralReward.from_spec` from the MDP.

    Example:
        >>> parse_network_spec("cnn:channels=16,16,kernel=5")
        {'kind': 'cnn', 'channels': [16, 16], 'kernel': 5}
    """
    kind, _, rest = spec.partition(":")
    if kind not in ("mlp", "cnn"):
        raise ValueError(f"unknown network kind {kind!r} in {spec!r}; known: mlp, cnn")
    arch: dict[str, Any] = {"kind": kind}
    key = None
    for tok in filter(None, (t.strip() for t in rest.split(","))):
        if "=" in tok:
            key, _, tok = tok.partition("=")
            arch[key] = []
        if key is None:
            raise ValueError(f"network option {tok!r} in {spec!r} must be key=value")
        arch[key].append(tok)
    for k, v in list(arch.items()):
        if k == "kind":
            continue
        if k == "activation":
            arch[k] = v[0]
            continue
        if k not in ("hidden", "channels", "kernel", "out"):
            raise ValueError(f"unknown {kind} option {k!r} in {spec!r}; known: "
                             f"{'hidden' if kind == 'mlp' else 'channels, kernel'}, out, activation")
        try:
            ints = [int(x) for x in v]
        except ValueError:
            raise ValueError(f"network option {k} in {spec!r} must be integers: got {v}") from None
        arch[k] = ints if k in ("hidden", "channels") else ints[0]
    return arch


class NeuralReward(RewardModel):
    """A reward computed by any ``torch.nn.Module`` from an MDP's features.

    ``theta`` is the flat vector of the network's parameters, so the model plugs
    into :class:`irl.LogJoint` like any other reward model: every human model,
    every evidence type, MaxEnt's L-BFGS (for small nets) and samplers. Layouts
    (``input``):

    * ``"state"``: the net maps state features ``(N, F)`` to ``(N,)``, ``(N, 1)`` or ``(N, A)``;
    * ``"state_action"``: features ``(S, A, F)`` flattened to ``(S*A, F)`` -> ``(S*A,)`` or ``(S*A, 1)``;
    * ``"grid"``: the features of a grid MDP as maps ``(B, F, H, W)`` -> ``(B, 1, H, W)`` or
      ``(B, A, H, W)`` (a convolutional net sees the neighbourhood of each cell).

    An output with one column (channel) is a state reward, broadcast over actions.
    :meth:`reward` evaluates the trained net on any MDP with the same feature
    layout (another map of another size, for the ``"state"`` and ``"grid"``
    layouts): that is how a reward transfers. Several MDPs in one
    :class:`irl.LogJoint` each get their own reward (``per_mdp``).

    Args:
        net: the network (its parameters are the model's ``theta``; it is converted to ``dtype``).
        mdp: the reference MDP whose sizes ``__call__(theta)`` produces (optional; without it
            only :meth:`reward` and :meth:`reward_for` work).
        input: ``"state"``, ``"state_action"`` or ``"grid"``.
        architecture: JSON description for :func:`build_network` (set by :meth:`from_spec`), so
            :meth:`save`/:meth:`load` can rebuild the net; ``None`` for a user's own module
            (then :meth:`load` needs the module).
        dtype: parameter and feature dtype (float64 by default, for exact gradients).

    Example:
        >>> import torch, irl
        >>> env = irl.envs.make("objectworld", size=6, features="continuous", seed=0)
        >>> model = irl.rewards.NeuralReward.from_spec("mlp:hidden=8", env)
        >>> model(model.initial_theta()).shape, model.reward(irl.envs.make("objectworld", size=9,
        ...     features="continuous", seed=1)).shape
        (torch.Size([36, 5]), (81, 5))

    References:
        Wulfmeier, Ondrúška & Posner (2015), "Maximum Entropy Deep Inverse
        Reinforcement Learning", arXiv:1507.04888.
    """

    per_mdp = True

    def __init__(self, net: torch.nn.Module, mdp: TabularMDP | None = None, *, input: str = "state",
                 architecture: dict[str, Any] | None = None, dtype: torch.dtype = torch.float64) -> None:
        if not isinstance(net, torch.nn.Module):
            raise TypeError(f"NeuralReward needs a torch.nn.Module: got {type(net).__name__}")
        if input not in NEURAL_INPUTS:
            raise ValueError(f"unknown input layout {input!r}; known: {', '.join(NEURAL_INPUTS)}")
        self.net, self.input, self.dtype = net.to(dtype), input, dtype
        self.architecture = None if architecture is None else dict(architecture)
        self._shapes = [(n, p.shape) for n, p in self.net.named_parameters()]
        self._features: Any = weakref.WeakKeyDictionary()  # MDP -> network input (MDPs hash by identity)
        self.mdp = mdp
        self.n_states = None if mdp is None else mdp.n_states
        self.n_actions = None if mdp is None else mdp.n_actions
        if mdp is not None:
            self.check_layout(mdp)

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_spec(cls, spec: str | dict[str, Any], mdp: TabularMDP, *, per_action: bool = False,
                  seed: int = 0, dtype: torch.dtype = torch.float64) -> "NeuralReward":
        """A built-in network (``"mlp:hidden=64,64"``, ``"cnn:channels=32,32,kernel=3"``) sized for ``mdp``.

        An MLP reads state features (``input="state"``, or ``"state_action"`` when the MDP
        has ``(S, A, F)`` features); a CNN reads the grid maps (``input="grid"``).
        ``per_action=True`` gives one output per action. ``seed`` seeds the initial weights.
        """
        arch = parse_network_spec(spec) if isinstance(spec, str) else dict(spec)
        if mdp.features is None:
            raise MDPValidationError(f"MDP {mdp.name!r} has no features; a neural reward needs them")
        F = mdp.features.shape[-1]
        sa = mdp.features.ndim == 3
        if arch.get("kind") == "cnn":
            arch.setdefault("in_channels", F)
            layout = "grid"
        else:
            arch.setdefault("in_features", F)
            layout = "state_action" if sa else "state"
        if per_action and not sa:
            arch["out"] = mdp.n_actions
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = build_network(arch)
        return cls(net, mdp, input=layout, architecture=arch, dtype=dtype)

    # ---------------------------------------------------------------- parameters
    @property
    def n_params(self) -> int:
        return int(sum(int(np.prod(s)) for _, s in self._shapes))

    def param_names(self) -> list[str]:
        return [f"{n}[{i}]" for n, s in self._shapes for i in range(int(np.prod(s)))]

    def initial_theta(self) -> torch.Tensor:
        """The network's current parameters as a flat vector ``(P,)`` (optimisers start here)."""
        return torch.nn.utils.parameters_to_vector(self.net.parameters()).detach().to(torch.float64).clone()

    def set_theta(self, theta: Any) -> None:
        """Copy a flat parameter vector ``(P,)`` into the network."""
        t = self._check(theta)
        if t.ndim != 1:
            raise ValueError(f"set_theta takes one parameter vector ({self.n_params},): got {tuple(t.shape)}")
        with torch.no_grad():
            torch.nn.utils.vector_to_parameters(t.detach().to(self.dtype), self.net.parameters())

    def _unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        out, i = {}, 0
        for name, shape in self._shapes:
            n = int(np.prod(shape))
            out[name] = theta[i:i + n].reshape(shape).to(self.dtype)
            i += n
        return out

    # ---------------------------------------------------------------- evaluation
    def check_layout(self, mdp: TabularMDP) -> None:
        """Raise unless ``mdp`` has the feature layout this network reads.

        Raises:
            MDPValidationError: no features, a grid layout without ``grid_shape``, or the
                wrong feature dimension.
        """
        if mdp.features is None:
            raise MDPValidationError(f"MDP {mdp.name!r} has no features; a neural reward needs them")
        want_ndim = 3 if self.input == "state_action" else 2
        if mdp.features.ndim != want_ndim:
            raise MDPValidationError(f"input layout {self.input!r} needs features of "
                                     f"{'(S, A, F)' if want_ndim == 3 else '(S, F)'}: MDP {mdp.name!r} has "
                                     f"{mdp.features.shape}")
        if self.input == "grid" and mdp.grid_shape is None:
            raise MDPValidationError(f"input layout 'grid' needs a grid MDP (grid_shape): {mdp.name!r} has none")
        first = next(iter(self.net.parameters()), None)
        n_in = self.architecture.get("in_features", self.architecture.get("in_channels")) if self.architecture else None
        if n_in is None and first is not None and first.ndim >= 2:
            n_in = first.shape[1]
        if n_in is not None and mdp.features.shape[-1] != n_in:
            raise MDPValidationError(f"the network reads {n_in} features per state: MDP {mdp.name!r} has "
                                     f"{mdp.features.shape[-1]} ({mdp.features.shape})")

    def features_of(self, mdp: TabularMDP) -> torch.Tensor:
        """The network input for ``mdp``: ``(S, F)``, ``(S*A, F)`` or ``(F, H, W)`` (cached per MDP)."""
        x = self._features.get(mdp)
        if x is None:
            self.check_layout(mdp)
            f = torch.from_numpy(np.array(mdp.features, dtype=np.float64)).to(self.dtype)
            if self.input == "state_action":
                f = f.reshape(-1, f.shape[-1])
            elif self.input == "grid":
                f = f.T.reshape(f.shape[1], *mdp.grid_shape).contiguous()
            x = self._features[mdp] = f
        return x

    def _output_to_reward(self, out: torch.Tensor, mdp: TabularMDP, lead: tuple) -> torch.Tensor:
        """Network output (batched over ``lead``) -> ``(*lead, S, A)``."""
        S, A = mdp.n_states, mdp.n_actions
        if self.input == "grid":  # (*lead, K, H, W) -> (*lead, S, K)
            out = out.reshape(*lead, out.shape[-3], S).transpose(-1, -2)
        elif self.input == "state_action":
            out = out.reshape(*lead, S, A)
            return out
        else:
            out = out.reshape(*lead, S, -1)
        k = out.shape[-1]
        if k == 1:
            return out.expand(*lead, S, A)
        if k != A:
            raise MDPValidationError(f"the network returns {k} outputs per state: expected 1 (a state reward) or "
                                     f"A = {A} (one per action) for MDP {mdp.name!r}")
        return out

    def rewards(self, mdps: list[TabularMDP], theta: Any = None) -> list[torch.Tensor]:
        """Rewards ``(S_i, A)`` for several MDPs, one network pass per group of same-shaped inputs.

        Args:
            mdps: MDPs with this network's feature layout (maps of any size).
            theta: flat parameters ``(P,)``; ``None`` uses (and differentiates) the network's own.
        """
        groups: dict[tuple, list[int]] = {}
        xs = [self.features_of(m) for m in mdps]
        for i, x in enumerate(xs):
            groups.setdefault(tuple(x.shape), []).append(i)
        params = None if theta is None else self._unflatten(self._check(theta))
        out: list[Any] = [None] * len(mdps)
        for idx in groups.values():
            batch = torch.stack([xs[i] for i in idx])  # (B, ...)
            if self.input != "grid":
                batch = batch.reshape(-1, batch.shape[-1])
            y = self.net(batch) if params is None else torch.func.functional_call(self.net, params, (batch,))
            y = y.reshape(len(idx), *y.shape[1:]) if self.input == "grid" else y.reshape(len(idx), -1)
            for j, i in enumerate(idx):
                out[i] = self._output_to_reward(y[j:j + 1], mdps[i], (1,))[0].to(torch.float64)
        return out

    def reward_for(self, mdp: TabularMDP, theta: Any = None) -> torch.Tensor:
        """Reward ``(..., S, A)`` in ``mdp`` for parameters ``theta (..., P)`` (``None``: the network's own)."""
        if theta is None:
            return self.rewards([mdp])[0]
        t = self._check(theta)
        if t.ndim == 1:
            return self.rewards([mdp], t)[0]
        flat = t.reshape(-1, t.shape[-1])
        return torch.stack([self.rewards([mdp], row)[0] for row in flat]).reshape(*t.shape[:-1], mdp.n_states,
                                                                                   mdp.n_actions)

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        if self.mdp is None:
            raise ValueError("NeuralReward(net) without a reference MDP has no fixed sizes: use reward_for(mdp, "
                             "theta), or build it as NeuralReward(net, mdp)")
        return self.reward_for(self.mdp, theta)

    def reward(self, mdp: TabularMDP) -> np.ndarray:
        """The trained network's reward ``(S, A)`` in any MDP with the same feature layout (transfer)."""
        with torch.no_grad():
            return self.reward_for(mdp).numpy().copy()

    # ---------------------------------------------------------------- files
    def save(self, path: Any) -> None:
        """Write the ``state_dict`` and a JSON description of the architecture, atomically.

        The file is a torch file holding only tensors and JSON text, readable with
        ``torch.load(path, weights_only=True)`` (no pickled code).
        """
        import json

        from demos.io import atomic_write

        desc = {"format": _NETWORK_FORMAT, "version": _NETWORK_VERSION, "input": self.input,
                "architecture": self.architecture, "dtype": str(self.dtype).replace("torch.", "")}
        payload = {"description": json.dumps(desc),
                   "state_dict": {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}}
        atomic_write(path, lambda f: torch.save(payload, f))

    @staticmethod
    def describe(path: Any) -> dict[str, Any]:
        """The JSON description stored in a file written by :meth:`save`."""
        import json

        payload = torch.load(path, weights_only=True, map_location="cpu")
        if not isinstance(payload, dict) or "description" not in payload:
            raise ValueError(f"{path}: not a neural reward file (no description)")
        desc = json.loads(payload["description"])
        if desc.get("format") != _NETWORK_FORMAT or int(desc.get("version", 0)) > _NETWORK_VERSION:
            raise ValueError(f"{path}: format {desc.get('format')!r} version {desc.get('version')} is not a "
                             f"{_NETWORK_FORMAT} file of version <= {_NETWORK_VERSION}")
        return desc

    @classmethod
    def load(cls, path: Any, net: torch.nn.Module | None = None, mdp: TabularMDP | None = None) -> "NeuralReward":
        """Read a file written by :meth:`save` (``torch.load(weights_only=True)``).

        Args:
            path: the file.
            net: the module to load the weights into; required when the architecture is a
                user's own (not described in the file), else rebuilt with :func:`build_network`.
            mdp: optional reference MDP.
        """
        desc = cls.describe(path)
        payload = torch.load(path, weights_only=True, map_location="cpu")
        arch = desc.get("architecture")
        dtype = {"float64": torch.float64, "float32": torch.float32}.get(desc.get("dtype"), torch.float64)
        if net is None:
            if arch is None:
                raise ValueError(f"{path}: the network is a user-defined module (no architecture in the file); "
                                 f"pass net=<a module of the same shape>")
            net = build_network(arch)
        net = net.to(dtype)
        net.load_state_dict(payload["state_dict"])
        return cls(net, mdp, input=desc["input"], architecture=arch, dtype=dtype)
