"""What shoppers do with a list: clicks, add-to-cart, purchases (Django-free, vectorised).

For the item i shown at rank r (1-based) in a session of user u served by arm g:

    P(click)            = (1 / r) ** eta × min(1, a(u, i) × L_g)
                          L_g = 1 + injected_effect for g = injected_arm, else 1
    ρ(u, i)             = clip((a(u, i) - B) / (F - B), 0, 1)                 relevance
    φ(i)                = min(1, (p_ref / price_i) ** price_sensitivity)       1 if the price is unknown
    P(cart | click)     = φ(i) × (cart_min + (cart_max - cart_min) × ρ)
    P(purchase | cart)  = purchase_min + (purchase_max - purchase_min) × ρ
    revenue             = price_i if purchased and the price is known, else 0

The examination and attraction events of the position-based model are drawn as one Bernoulli
with their product probability (they are independent), so a click costs one uniform; the
cart and purchase draws are made only for clicks. a(u, i), F and B are those of
`preferences.Shoppers`; p_ref is the median known price.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .config import SimulationConfig, SimulationError
from .preferences import BoolArray, FloatArray, IntArray, Shoppers
from .sessions import Sessions

__all__ = ["Outcomes", "examination", "outcomes"]


@dataclass(frozen=True)
class Outcomes:
    """Flat arrays, one entry per impression (a shown item), in session then rank order.

    `session` indexes the `Sessions` the outcomes were drawn for; `position` is the 1-based
    rank; `arm` the serving arm; `click_probability` the P(click) the draw used (for checks).
    `carted` implies `clicked`, and `purchased` implies `carted`.
    """

    session: IntArray
    position: IntArray
    item: IntArray
    arm: IntArray
    click_probability: FloatArray
    clicked: BoolArray
    carted: BoolArray
    purchased: BoolArray
    revenue: FloatArray

    def __len__(self) -> int:
        return len(self.session)

    def shifted(self, offset: int) -> Outcomes:
        """The same outcomes with `offset` added to the session indices."""
        return Outcomes(**{**self.__dict__, "session": self.session + offset})

    @classmethod
    def concatenate(cls, parts: Sequence[Outcomes]) -> Outcomes:
        if not parts:
            return cls.empty()
        return cls(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in cls.__dataclass_fields__})

    @classmethod
    def empty(cls) -> Outcomes:
        ints = np.zeros(0, dtype=np.int64)
        flags = np.zeros(0, dtype=np.bool_)
        floats = np.zeros(0, dtype=np.float64)
        return cls(ints, ints, ints, ints, floats, flags, flags, flags, floats)


def examination(k: int, eta: float) -> FloatArray:
    """P(examined) of ranks 1 .. k: (1 / r) ** eta."""
    result: FloatArray = (1.0 / np.arange(1, k + 1, dtype=np.float64)) ** eta
    return result


def outcomes(
    config: SimulationConfig,
    shoppers: Shoppers,
    sessions: Sessions,
    recommended_items: npt.ArrayLike,
    arm_of_session: npt.ArrayLike,
    rng: np.random.Generator,
    arm_of_slot: npt.ArrayLike | None = None,
) -> Outcomes:
    """Draw the outcome of every shown item (see the module docstring for the model).

    `recommended_items` is (len(sessions), width) of item indices, best first; -1 marks an
    empty slot (fewer items than the width, or a session outside the experiment), which is
    not an impression. `arm_of_session` has one arm index per session (-1 = none).
    `arm_of_slot` (same shape as `recommended_items`), when given, names the arm of each shown
    item instead: in an interleaved list the arm that contributed it, whose lift L_g applies and
    which `Outcomes.arm` reports.
    """
    recommended = np.asarray(recommended_items, dtype=np.int64)
    arms = np.asarray(arm_of_session, dtype=np.int64)
    n = len(sessions)
    if recommended.ndim != 2 or recommended.shape[0] != n:
        raise SimulationError(f"recommended_items must have shape ({n}, k), got {recommended.shape}")
    if arms.shape != (n,):
        raise SimulationError(f"arm_of_session must have one entry per session ({n}), got shape {arms.shape}")
    if recommended.size and (recommended.min() < -1 or recommended.max() >= shoppers.n_items):
        raise SimulationError("recommended_items holds an index outside the catalogue (use -1 for an empty slot).")

    session, column = np.nonzero(recommended >= 0)
    items = recommended[session, column]
    if arm_of_slot is None:
        arm = arms[session]
    else:
        slots = np.asarray(arm_of_slot, dtype=np.int64)
        if slots.shape != recommended.shape:
            raise SimulationError(f"arm_of_slot must have shape {recommended.shape}, got {slots.shape}")
        arm = slots[session, column]
    attractive = shoppers.attractiveness(sessions.user[session], items, config)
    lift = np.where(arm == config.injected_arm, config.lift, 1.0)
    p_click = examination(recommended.shape[1], config.eta)[column] * np.minimum(1.0, attractive * lift)
    clicked = rng.random(len(items)) < p_click

    hit = np.flatnonzero(clicked)
    f, b = config.future_attractiveness, config.background_attractiveness
    relevance = np.clip((attractive[hit] - b) / (f - b), 0.0, 1.0)
    price = shoppers.item_price[items[hit]]
    known = np.isfinite(price) & (price > 0)
    factor = np.ones(len(hit))
    if config.price_sensitivity > 0 and known.any():
        factor[known] = np.minimum(1.0, (shoppers.reference_price / price[known]) ** config.price_sensitivity)
    p_cart = factor * (config.cart_min + (config.cart_max - config.cart_min) * relevance)
    p_purchase = config.purchase_min + (config.purchase_max - config.purchase_min) * relevance
    draws = rng.random((2, len(hit)))
    cart_hit = draws[0] < p_cart
    purchase_hit = cart_hit & (draws[1] < p_purchase)

    carted = np.zeros(len(items), dtype=np.bool_)
    purchased = np.zeros(len(items), dtype=np.bool_)
    revenue = np.zeros(len(items), dtype=np.float64)
    carted[hit] = cart_hit
    purchased[hit] = purchase_hit
    revenue[hit] = np.where(purchase_hit & np.isfinite(price), price, 0.0)
    return Outcomes(
        session=session.astype(np.int64),
        position=(column + 1).astype(np.int64),
        item=items,
        arm=arm,
        click_probability=p_click,
        clicked=clicked,
        carted=carted,
        purchased=purchased,
        revenue=revenue,
    )
