"""Environments built to expose a bias: a temptation, a risky shortcut, a lava wall, the restaurant choice.

Each one is a small gridworld in which a biased human and a rational one with
the *same* reward behave differently, so that reading the biased human's
demonstrations with the wrong human model teaches the wrong reward:

* ``temptation-corridor``: a small reward (``temptation``) at one end of a
  corridor, a large one (``goal``) at the other. A myopic, bounded or
  hyperbolic human who starts near the temptation takes it.
* ``cliff-shortcut``: slippery moves; the short path to the goal runs along a
  cliff, a safe path behind a wall, two rows up, costs four extra steps. A
  human who is overconfident about its moves walks the edge and often falls.
* ``lava-detour``: a lava wall between start and goal with a gap at the far
  end; a careful human walks round it, but random slips step into the lava.
* ``restaurant-choice``: Evans, Stuhlmüller & Goodman's (2016) restaurant
  gridworld (donut shops, vegetarian café, noodle shop), with the two-step
  restaurant rewards (immediate, then delayed) and no turning back.

:func:`ascii_gridworld` builds such worlds from a text map.

References:
    Evans, Stuhlmüller & Goodman (2016), "Learning the preferences of ignorant,
    inconsistent agents", AAAI; Evans, Stuhlmüller, Salvatier & Filan,
    "Modeling Agents with Probabilistic Programs" (agentmodels.org), chapters
    "Time inconsistency" and "Joint inference of biases and preferences".
    Sutton & Barto (2018), "Reinforcement Learning: An Introduction", Example
    6.6 (cliff walking).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import scipy.sparse as sp

from irl.mdp import MDPValidationError, TabularMDP

__all__ = ["ascii_gridworld", "temptation_corridor", "cliff_shortcut", "lava_detour", "restaurant_choice",
           "RESTAURANT_MAP", "RESTAURANT_FEATURES", "restaurant_reward", "restaurant_path", "MOVES", "ENVIRONMENTS"]

#: The four moves of the gridworlds here: name -> (row, column) step.
MOVES = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}

#: Default legend: character -> (feature name, terminal). ``#`` is a wall, ``S`` a start cell (floor).
DEFAULT_LEGEND: dict[str, tuple[str, bool]] = {
    ".": ("step", False), "S": ("step", False), "G": ("goal", True), "t": ("temptation", True),
    "C": ("cliff", True), "L": ("lava", False),
}


def ascii_gridworld(layout: Sequence[str], *, weights: Mapping[str, float], legend: Mapping[str, tuple[str, bool]]
                    | None = None, slip: float = 0.0, horizon: int | None = None, discount: float = 1.0,
                    name: str = "ascii-gridworld") -> TabularMDP:
    """A gridworld from a text map: four moves, optional slips, terminal cells, one-hot cell features.

    Every character of ``layout`` is a cell: ``#`` a wall (a state no one can
    enter, with all-zero features, kept so that ``grid_shape`` holds), ``S`` a
    start cell (the start distribution is uniform over them), others as given by
    ``legend``. A move goes to the neighbouring cell with probability
    ``1 - slip``; with probability ``slip`` it is replaced by one of the four
    moves at random; a move into a wall or off the map stays put. Features are
    one indicator per feature name (in ``legend`` order); the true reward of a
    cell is ``weights[feature]``. Terminal cells give their reward once and end
    the episode.

    Args:
        layout: rows of equal length.
        weights: true reward per feature name (features not listed weigh 0).
        legend: ``char -> (feature, terminal)``; default :data:`DEFAULT_LEGEND`.
        slip: probability of a random move, in ``[0, 1]``.
        horizon: episode length (``None`` needs ``discount < 1``).
        discount: discount factor.
        name: label.

    Returns:
        The MDP; ``state_names`` are ``"r,c"`` and ``action_names`` the four moves.

    Raises:
        MDPValidationError: ragged rows, unknown characters, no start cell, bad ``slip``.

    Example:
        >>> from irl.envs.bias_envs import ascii_gridworld
        >>> env = ascii_gridworld(["S.G"], weights={"goal": 1.0, "step": -0.1}, horizon=4)
        >>> env.n_states, env.n_actions, env.feature_names
        (3, 4, ('step', 'goal'))
    """
    legend = dict(DEFAULT_LEGEND if legend is None else legend)
    rows = [str(r) for r in layout]
    if not rows or any(len(r) != len(rows[0]) for r in rows):
        raise MDPValidationError(f"layout rows must all have the same length: got lengths {[len(r) for r in rows]}")
    unknown = sorted({ch for r in rows for ch in r} - set(legend) - {"#"})
    if unknown:
        raise MDPValidationError(f"layout has unknown cell characters {unknown}; known: {sorted(legend) + ['#']}")
    if not 0.0 <= slip <= 1.0:
        raise MDPValidationError(f"slip must lie in [0, 1]: got {slip}")
    R, Cn = len(rows), len(rows[0])
    cells = np.array([list(r) for r in rows])
    S, A = R * Cn, len(MOVES)
    present = {ch for r in rows for ch in r}
    feature_names: list[str] = []
    for ch, (feat, _) in legend.items():
        if ch in present and feat not in feature_names:
            feature_names.append(feat)
    feats = np.zeros((S, len(feature_names)))
    terminal = np.zeros(S, bool)
    wall = (cells == "#").ravel()
    for s, ch in enumerate(cells.ravel()):
        if ch != "#":
            feat, term = legend[ch]
            feats[s, feature_names.index(feat)] = 1.0
            terminal[s] = term
    start = (cells == "S").ravel()
    if not start.any():
        raise MDPValidationError("layout needs at least one start cell 'S'")
    r, c = np.divmod(np.arange(S), Cn)
    moves = np.array(list(MOVES.values()))
    nr, nc = r[:, None] + moves[None, :, 0], c[:, None] + moves[None, :, 1]
    inside = (nr >= 0) & (nr < R) & (nc >= 0) & (nc < Cn)
    dest = np.where(inside, np.clip(nr, 0, R - 1) * Cn + np.clip(nc, 0, Cn - 1), np.arange(S)[:, None])
    dest = np.where(wall[dest], np.arange(S)[:, None], dest)  # bump into walls
    T = np.zeros((S, A, S))
    for a in range(A):
        T[np.arange(S), a, dest[:, a]] += 1.0 - slip
        for b in range(A):
            T[np.arange(S), a, dest[:, b]] += slip / A
    T[terminal] = 0.0
    w = np.array([float(weights.get(f, 0.0)) for f in feature_names])
    unknown_w = sorted(set(weights) - set(feature_names))
    if unknown_w:
        raise MDPValidationError(f"weights name unknown features {unknown_w}; features: {feature_names}")
    return TabularMDP(transitions=sp.csr_matrix(T.reshape(S * A, S)), n_states=S, n_actions=A,
                      initial=start / start.sum(), discount=discount, horizon=horizon, features=feats,
                      terminal=terminal, true_reward=feats @ w, name=name,
                      state_names=tuple(f"{i},{j}" for i, j in zip(r, c)), action_names=tuple(MOVES),
                      grid_shape=(R, Cn), feature_names=tuple(feature_names))


# ------------------------------------------------------------------ temptation
TEMPTATION_LAYOUT = (
    "###########",
    "#GSSSSSSSt#",
    "#SSSSSSSSS#",
    "###########",
)


def temptation_corridor(*, goal: float = 10.0, temptation: float = 3.0, step: float = -0.1, slip: float = 0.0,
                        horizon: int = 12) -> TabularMDP:
    """A two-row corridor: a large goal at the far left end, a small temptation at the far right end.

    Episodes start in any floor cell. From every cell the best plan is to walk
    to the goal (``goal - 9 * |step|`` from the far right beats ``temptation``),
    but a human who plans only a few steps ahead (:class:`~human_models.Myopic`,
    :class:`~human_models.BoundedPlanner`) or discounts hyperbolically
    (:class:`~human_models.HyperbolicDiscounter`) and starts near the temptation
    takes it, and one who starts in the middle may wander. Features: ``step``,
    ``goal``, ``temptation`` (both ends are terminal).

    Args:
        goal: true reward of the goal cell.
        temptation: true reward of the temptation cell.
        step: true reward of every other step.
        slip: probability of a random move.
        horizon: episode length.

    Example:
        >>> import irl
        >>> env = irl.envs.make("temptation-corridor")
        >>> env.feature_names, env.grid_shape
        (('step', 'goal', 'temptation'), (4, 11))
    """
    return ascii_gridworld(TEMPTATION_LAYOUT, weights={"goal": goal, "temptation": temptation, "step": step},
                           slip=slip, horizon=horizon, name="temptation-corridor")


# ------------------------------------------------------------------- cliff
CLIFF_LAYOUT = (
    "###########",
    "#.........#",
    "#.#######.#",
    "#S.......G#",
    "#CCCCCCCCC#",
    "###########",
)


def cliff_shortcut(*, goal: float = 10.0, cliff: float = -10.0, step: float = -0.1, slip: float = 0.2,
                   horizon: int = 20) -> TabularMDP:
    """Cliff walking with slippery moves: the edge path is short, the safe one behind a wall.

    Start and goal lie on the row along the cliff (terminal, ``cliff``); a wall
    separates it from a safe corridor two rows up (8 moves along the edge, 12
    by the safe corridor). With probability ``slip`` a move goes in a random
    direction, so every step along the edge risks the cliff: the optimal plan
    takes the safe corridor, while a human who overrates how reliably moves
    succeed (:class:`~human_models.FalseBelief` with ``confidence > 1``) walks
    the edge. Features: ``step``, ``goal``, ``cliff``.

    Args:
        goal: true reward of the goal cell.
        cliff: true reward of a cliff cell.
        step: true reward of every other step.
        slip: probability of a random move.
        horizon: episode length.

    Example:
        >>> import irl
        >>> env = irl.envs.make("cliff-shortcut")
        >>> env.feature_names
        ('step', 'goal', 'cliff')

    References:
        Sutton & Barto (2018), "Reinforcement Learning: An Introduction", Example 6.6.
    """
    legend = {".": ("step", False), "S": ("step", False), "G": ("goal", True), "C": ("cliff", True)}
    return ascii_gridworld(CLIFF_LAYOUT, weights={"goal": goal, "cliff": cliff, "step": step}, legend=legend,
                           slip=slip, horizon=horizon, name="cliff-shortcut")


# -------------------------------------------------------------------- lava
LAVA_LAYOUT = (
    "#########",
    "#...L...#",
    "#S..L..G#",
    "#...L...#",
    "#...L...#",
    "#.......#",
    "#########",
)


def lava_detour(*, goal: float = 10.0, lava: float = -5.0, step: float = -0.2, slip: float = 0.0,
                horizon: int = 16) -> TabularMDP:
    """A lava wall between start and goal, with a gap at the bottom: walk round, or wade through.

    Lava is not terminal: each step in it costs ``lava``. The detour costs six
    extra steps (``6 * |step|``), far less than the lava; a human whose random
    slips carry it into the lava now and then looks, to a model that takes every
    action as deliberate, like one who does not mind lava much
    (:class:`~human_models.Noisy`). Features: ``step``, ``goal``, ``lava``.

    Args:
        goal: true reward of the goal cell.
        lava: true reward of each step in the lava.
        step: true reward of every other step.
        slip: probability of a random move.
        horizon: episode length.

    Example:
        >>> import irl
        >>> irl.envs.make("lava-detour").feature_names
        ('step', 'goal', 'lava')
    """
    legend = {".": ("step", False), "S": ("step", False), "G": ("goal", True), "L": ("lava", False)}
    return ascii_gridworld(LAVA_LAYOUT, weights={"goal": goal, "lava": lava, "step": step}, legend=legend,
                           slip=slip, horizon=horizon, name="lava-detour")


# -------------------------------------------------------------- restaurants
#: Evans et al.'s restaurant map, top row first (``x`` the column, ``y = 0`` the bottom row, as in the book).
RESTAURANT_MAP = (
    "####V#",
    "###   ",
    "##D # ",
    "### # ",
    "###   ",
    "### #N",
    "    ##",
    "d## ##",
)
_RESTAURANTS = {"D": "Donut N", "d": "Donut S", "V": "Veg", "N": "Noodle"}
#: Feature names of :func:`restaurant_choice` (state-action features).
RESTAURANT_FEATURES = ("Donut N immediate", "Donut N delayed", "Donut S immediate", "Donut S delayed",
                       "Veg immediate", "Veg delayed", "Noodle immediate", "Noodle delayed", "time cost", "illegal")
_DIRS = {"l": (-1, 0), "r": (1, 0), "u": (0, 1), "d": (0, -1)}  # (dx, dy), y pointing up


def restaurant_reward(donut: Sequence[float] = (10.0, -10.0), veg: Sequence[float] = (-10.0, 20.0),
                      noodle: Sequence[float] = (-5.0, -5.0), time_cost: float = -0.01, *,
                      donut_south: Sequence[float] | None = None, illegal: float = -100.0) -> np.ndarray:
    """Weights on :data:`RESTAURANT_FEATURES`: ``(immediate, delayed)`` utility per restaurant.

    The defaults are the temptation utilities of the book's chapter "Time
    inconsistency" (donuts ``[10, -10]``, veg ``[-10, 20]``, noodles
    ``[-5, -5]``, time cost ``-0.01``).

    Args:
        donut: ``(immediate, delayed)`` utility of Donut N (and of Donut S unless given).
        veg: ``(immediate, delayed)`` utility of the vegetarian café.
        noodle: ``(immediate, delayed)`` utility of the noodle shop.
        time_cost: utility of every step on the street.
        donut_south: Donut S's own utilities, when they differ from Donut N's.
        illegal: weight of the moves the map does not allow (into a wall, or
            straight back where the agent came from).

    Returns:
        ``(10,)`` weights; the reward is ``env.features @ weights``.

    Example:
        >>> from irl.envs.bias_envs import restaurant_reward
        >>> restaurant_reward(donut=(20.0, 0.0))[:4].tolist()
        [20.0, 0.0, 20.0, 0.0]
    """
    ds = donut if donut_south is None else donut_south
    return np.array([*donut, *ds, *veg, *noodle, time_cost, illegal], dtype=np.float64)


def restaurant_choice(*, horizon: int = 11, no_reverse: bool = True, weights: Any = None) -> TabularMDP:
    """Evans et al.'s Restaurant Choice gridworld (MDP version), from the published description.

    The map (agentmodels.org, :data:`RESTAURANT_MAP`): a street grid with two
    branches of a donut chain (Donut N at ``(2, 5)``, Donut S at ``(0, 0)``), a
    vegetarian café (Veg, ``(4, 7)``) and a noodle shop (Noodle, ``(5, 2)``);
    the agent starts at ``(3, 1)`` (``x`` the column, ``y`` up from the bottom
    row). Moves are deterministic; a move is allowed only if it changes the
    location and (``no_reverse``, the book's default) does not go straight back
    to the previous cell, so the state records where the agent came from.
    Entering a restaurant gives its *immediate* utility on the next step and
    its *delayed* utility on the one after, then the episode ends. Every step
    on the street costs ``time cost``. Forbidden moves stay put and carry the
    feature ``illegal`` (weight -100 in :func:`restaurant_reward`), so that no
    sensible agent takes them.

    Time: the book's agent starts with ``timeLeft = 11``: it can make at most 10
    moves, and a restaurant reached by the 10th gives only its immediate
    utility. Here every action counts towards ``horizon = 11``, which gives
    exactly the same budget (the sophisticated detour to Veg, 9 moves and 2
    restaurant steps, just fits).

    Features are state-action features (:data:`RESTAURANT_FEATURES`), so a
    reward hypothesis is a weight vector (see :func:`restaurant_reward`).

    Args:
        horizon: number of actions.
        no_reverse: forbid moving straight back.
        weights: true reward weights (default :func:`restaurant_reward` ``()``).

    Example:
        >>> import irl
        >>> env = irl.envs.make("restaurant-choice")
        >>> env.state_names[int(env.initial.argmax())], env.n_actions
        ('(3,1)', 4)

    References:
        Evans, Stuhlmüller & Goodman (2016), "Learning the preferences of ignorant,
        inconsistent agents", AAAI. agentmodels.org, "Time inconsistency II".
    """
    H = len(RESTAURANT_MAP)
    grid = {(x, H - 1 - row): ch for row, line in enumerate(RESTAURANT_MAP) for x, ch in enumerate(line)}
    street = sorted(p for p, ch in grid.items() if ch == " ")
    shops = {p: _RESTAURANTS[ch] for p, ch in grid.items() if ch in _RESTAURANTS}
    came = [None, *_DIRS]  # direction the agent arrived by (None at the start)
    names: list[str] = []
    index: dict[Any, int] = {}
    for p in street:
        for c in came:
            index[(p, c)] = len(names)
            names.append(f"({p[0]},{p[1]})" + ("" if c is None else f" from {c}"))
    for p, shop in sorted(shops.items()):
        for phase in ("arrive", "after"):
            index[(shop, phase)] = len(names)
            names.append(f"{shop} ({phase})")
    S, A = len(names), len(_DIRS)
    F = len(RESTAURANT_FEATURES)
    feats = np.zeros((S, A, F))
    T = np.zeros((S, A, S))
    terminal = np.zeros(S, bool)
    back = {"l": "r", "r": "l", "u": "d", "d": "u"}
    fi = {f: i for i, f in enumerate(RESTAURANT_FEATURES)}
    for (p, c), s in ((k, v) for k, v in index.items() if isinstance(k[0], tuple)):
        feats[s, :, fi["time cost"]] = 1.0
        legal = {}
        for a, (dx, dy) in _DIRS.items():
            q = (p[0] + dx, p[1] + dy)
            if q not in grid or grid[q] == "#":
                continue
            if no_reverse and c is not None and a == back[c]:
                continue
            legal[a] = q
        for ai, a in enumerate(_DIRS):
            if a in legal:
                q = legal[a]
                nxt = index[(shops[q], "arrive")] if q in shops else index[(q, a)]
                T[s, ai, nxt] = 1.0
            elif legal:
                T[s, ai, s] = 1.0
                feats[s, ai, fi["illegal"]] = 1.0
            else:  # a dead end: nothing is allowed, so every action waits where it is
                T[s, ai, s] = 1.0
    for shop in set(shops.values()):
        arrive, after = index[(shop, "arrive")], index[(shop, "after")]
        feats[arrive, :, fi[f"{shop} immediate"]] = 1.0
        feats[after, :, fi[f"{shop} delayed"]] = 1.0
        T[arrive, :, after] = 1.0
        terminal[after] = True
    initial = np.zeros(S)
    initial[index[((3, 1), None)]] = 1.0
    w = restaurant_reward() if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (F,):
        raise MDPValidationError(f"weights must have {F} entries {RESTAURANT_FEATURES}: got shape {w.shape}")
    return TabularMDP.from_arrays(T, initial=initial, horizon=horizon, discount=1.0, features=feats,
                                  terminal=terminal, true_reward=feats @ w, name="restaurant-choice",
                                  state_names=tuple(names), action_names=tuple(_DIRS),
                                  feature_names=RESTAURANT_FEATURES)


def restaurant_path(env: TabularMDP, name: str = "naive") -> Any:
    """One of the book's observed paths in :func:`restaurant_choice`, as :class:`demos.Trajectories`.

    ``name`` is ``"naive"`` (up to Donut N, the path only a naive hyperbolic
    discounter takes), ``"sophisticated"`` (the long way round to Veg),
    ``"veg_direct"`` or ``"donut_south"``.

    Args:
        env: a :func:`restaurant_choice` MDP.
        name: which path.

    Returns:
        One trajectory (the moves, then one action inside the restaurant), ending in
        the restaurant's terminal state.

    Raises:
        KeyError: unknown name (listing the known ones).
        MDPValidationError: the path does not end in a restaurant of ``env``.

    Example:
        >>> import irl
        >>> from irl.envs.bias_envs import restaurant_path
        >>> env = irl.envs.make("restaurant-choice")
        >>> env.state_names[int(restaurant_path(env, "donut_south").final_states[0])]
        'Donut S (after)'
    """
    from demos import Trajectories

    moves = {"naive": "uuuul", "sophisticated": "uurruuulu", "veg_direct": "uuuuuru", "donut_south": "llld"}
    if name not in moves:
        raise KeyError(f"unknown restaurant path {name!r}; known: {sorted(moves)}")
    dirs = list(_DIRS)
    s = int(env.initial.argmax())
    states, actions = [s], []
    P = env.dense_transitions()
    for a in moves[name] + "l":  # one more action inside the restaurant
        ai = dirs.index(a)
        actions.append(ai)
        s = int(P[s, ai].argmax())
        states.append(s)
    if not env.terminal[s]:
        raise MDPValidationError(f"path {name!r} does not end in a restaurant in {env.name!r}")
    return Trajectories.from_lists([states], [actions], terminated=[True])


#: ``name -> (factory, summary)`` for :mod:`irl.envs` registration.
ENVIRONMENTS = {
    "temptation-corridor": (temptation_corridor,
                            "two-row corridor: goal +10 at the far left, temptation +3 at the far right, horizon 12"),
    "cliff-shortcut": (cliff_shortcut, "slippery cliff walk: edge path short but risky, safe corridor behind a wall"),
    "lava-detour": (lava_detour, "lava wall between start and goal; the safe path walks round it"),
    "restaurant-choice": (restaurant_choice,
                          "Evans et al. (2016) restaurant gridworld: donut shops, veg cafe, noodles; no reverse"),
}
