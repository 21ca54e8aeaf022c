"""Deep recommenders trained on implicit feedback with sampled negatives (TensorFlow/Keras).

Two models share one training loop (`_SampledNegativesRecommender`):

* `MlpRecommender` (``deep_mlp``): user and item embeddings are concatenated and fed to a
  stack of ReLU layers ending in one sigmoid unit, the probability that the user
  interacts with the item (the "MLP" half of He et al., 2017, Neural Collaborative
  Filtering).
* `TwoTowerRecommender` (``two_tower``): a user tower and an item tower (embedding, then
  small dense layers) map each side to a vector; their dot product is the logit. Scoring
  every item for a user is one matrix product of precomputed tower outputs. When the data
  carry item text, the item tower also reads a fixed TF-IDF/SVD vector of it.

Training data. Every distinct observed (user, item) pair is a positive (label 1), whatever
its rating or quantity. For each positive, `negatives` items the user never interacted
with are drawn uniformly (label 0), afresh for every epoch, from a numpy generator seeded
with `seed`. The loss is binary cross-entropy, optimised with Adam; the mean loss of each
epoch goes to `FitReport.history["loss"]` and to `progress` through a Keras callback.

Scoring and artifacts. After training, the Keras weights are copied into numpy arrays, and
`_score` evaluates the network with numpy alone. So a loaded model serves recommendations
without importing TensorFlow (a ~6 s import and a few hundred MB in a web worker), and the
pickled state holds only numpy arrays and the params (`__getstate__` drops the Keras
object). `keras_model()` rebuilds the Keras model from those arrays on demand, e.g. to
inspect it or check that the numpy forward pass agrees with Keras (the tests do).

Scores are logits (the sigmoid is monotonic, so ranking is the same); probabilities near 1
would round to equal float32 values and lose the order among the best items. Cost of
scoring all items: two-tower, one (users x d) @ (d x items) product; MLP, the network on
every (user, item) pair, ~80k multiply-adds each with the default layers: 127 G for
MovieLens 100K's 943 x 1,682 pairs, 8.4 s of CPU time in float32 BLAS on this 2-core
machine (10.2 s before the cache-sized in-place blocks of `MlpRecommender._score_rows`).
That is arithmetic, not overhead: evaluating the MLP over the whole catalogue cannot take
under a second here without a smaller network.

TensorFlow is imported only inside the functions that train or rebuild a model, never at
module level: Django and Celery import this module through the registry at start-up.
Determinism: training seeds Python, numpy and TensorFlow with `seed`
(`keras.utils.set_random_seed`, which also reseeds numpy's global generator) and shuffles
with its own generator; on CPU that repeats runs closely, but multithreaded kernels may
still differ in the last bits.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, cast

import numpy as np

from recommenders.algorithms.base import (
    FitReport,
    FloatArray,
    IntArray,
    ProgressCallback,
    Recommender,
    RecommenderError,
    TrainingData,
)
from recommenders.algorithms.deep_inputs import (
    Array32,
    MlpParams,
    TwoTowerParams,
    item_text_features,
    labelled_rows,
)

LayerWeights = dict[str, list[Array32]]
"""Trained weights by Keras layer name, as numpy arrays (Dense: [kernel, bias]; Embedding: [table])."""

# (user, item) pairs per MLP scoring block: two float32 buffers of this many rows x hidden
# units (2 x 6.5 MB with 200 units) stay near the CPU caches; at least one user per block.
_SCORE_BLOCK_ROWS = 8192


def _dense(x: Array32, weights: list[Array32], *, relu: bool) -> Array32:
    """A Keras Dense layer in numpy: x @ kernel + bias, then ReLU when `relu`."""
    y = x @ weights[0] + weights[1]
    return np.maximum(y, 0.0, dtype=np.float32) if relu else y.astype(np.float32, copy=False)


# ---- shared training loop -----------------------------------------------------------------
class _SampledNegativesRecommender(Recommender):
    """Training loop, numpy weights and pickling shared by the Keras models.

    Subclasses implement `_build_keras` (the architecture, with fixed layer names),
    `_compute_cache` (numpy arrays derived from `_weights` once, for scoring) and
    `_score_rows` (network scores for a batch of users, numpy only),
    and set `from_logits` when the Keras output is a logit rather than a probability.
    """

    from_logits: ClassVar[bool] = False
    # Transient state: rebuilt on demand, never pickled.
    _TRANSIENT: ClassVar[tuple[str, ...]] = ("_keras", "_cache")

    _weights: LayerWeights
    _n_users: int
    _n_items: int

    def __init__(self, params: Any = None) -> None:
        super().__init__(params)
        self._keras: Any = None
        self._cache: dict[str, Array32] | None = None

    # -- architecture hooks --
    def _prepare(self, data: TrainingData) -> None:
        """Derive fixed inputs from `data` before the model is built (none by default)."""

    def _build_keras(self, keras: Any, n_users: int, n_items: int) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _compute_cache(self) -> dict[str, Array32]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fit_notes(self) -> dict[str, Any]:
        """Model-specific entries for `FitReport.notes` (none by default)."""
        return {}

    def _finish(self) -> None:
        """Drop what `_prepare` derived once the weights hold it (nothing by default)."""

    # -- training --
    def _fit(self, data: TrainingData, progress: ProgressCallback) -> FitReport:
        self._prepare(data)  # first: it may reject the data before the slow TensorFlow import
        import tensorflow as tf  # heavy: imported only when training

        keras = tf.keras
        p = cast("MlpParams | TwoTowerParams", self.params)
        started = time.perf_counter()
        self._n_users, self._n_items = data.n_users, data.n_items
        # Positives: distinct (user, item) pairs; `seen` is the binary matrix the base built.
        coo = self.seen.tocoo()
        pos_users = coo.row.astype(np.int64)
        pos_items = coo.col.astype(np.int64)
        rng = np.random.default_rng(p.seed)
        validation: tuple[dict[str, IntArray], Array32] | None = None
        if p.validation_fraction > 0:
            held = rng.random(len(pos_users)) < p.validation_fraction
            if held.all() or not held.any():
                raise RecommenderError(
                    f"validation_fraction={p.validation_fraction} leaves no training or no validation pairs "
                    f"out of {len(pos_users)}."
                )
            vu, vi, vy = labelled_rows(self.seen, pos_users[held], pos_items[held], p.negatives, rng)
            validation = ({"user": vu, "item": vi}, vy[:, None])
            pos_users, pos_items = pos_users[~held], pos_items[~held]

        keras.utils.set_random_seed(p.seed)
        model = self._build_keras(keras, data.n_users, data.n_items)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate=p.learning_rate),
            loss=keras.losses.BinaryCrossentropy(from_logits=self.from_logits),
            # Several steps per graph call: same updates, fewer Python round trips per batch.
            steps_per_execution=32,
        )
        history: dict[str, list[float]] = {"loss": []}
        if validation is not None:
            history["val_loss"] = []

        class _Progress(keras.callbacks.Callback):  # type: ignore[misc, name-defined]
            """Records each epoch's mean loss and reports it through `progress`."""

            def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
                logs = logs or {}
                for key in history:
                    history[key].append(float(logs[key]))
                message = f"epoch {epoch + 1}/{p.epochs} loss {history['loss'][-1]:.4f}"
                if "val_loss" in history:
                    message += f" val_loss {history['val_loss'][-1]:.4f}"
                progress((epoch + 1) / p.epochs, message)

        callback = _Progress()
        rows_per_epoch = 0
        for epoch in range(p.epochs):
            # Fresh negatives every epoch (as in NCF): the model sees more of the unseen
            # items than a fixed sample would show it, at the cost of resampling here.
            users, items, labels = labelled_rows(self.seen, pos_users, pos_items, p.negatives, rng)
            rows_per_epoch = len(labels)
            model.fit(
                {"user": users, "item": items},
                labels[:, None],
                batch_size=p.batch_size,
                epochs=epoch + 1,
                initial_epoch=epoch,
                shuffle=False,  # already shuffled by our seeded generator
                validation_data=validation,
                callbacks=[callback],
                verbose=0,
            )
        self._weights = {
            layer.name: [np.asarray(w, dtype=np.float32) for w in layer.get_weights()]
            for layer in model.layers
            if layer.get_weights()
        }
        self._keras = model
        self._cache = None
        self._finish()
        return FitReport(
            history=history,
            notes={
                "positives": len(pos_users),
                "rows_per_epoch": rows_per_epoch,
                "validation_rows": 0 if validation is None else len(validation[1]),
                "train_seconds": round(time.perf_counter() - started, 3),
                "tensorflow": tf.__version__,
                **self._fit_notes(),
            },
        )

    # -- Keras model on demand --
    def keras_model(self) -> Any:
        """The trained Keras model, rebuilt from the numpy weights after unpickling (imports TensorFlow)."""
        self._require_fitted()
        if self._keras is None:
            import tensorflow as tf

            model = self._build_keras(tf.keras, self._n_users, self._n_items)
            for name, weights in self._weights.items():
                model.get_layer(name).set_weights(weights)
            self._keras = model
        return self._keras

    def _score(self, users: IntArray, query: str | None = None) -> FloatArray:
        """Network scores, except that users without training interactions get `cold_start_scores`.

        The base class sends only unknown ids to the fallback; a user listed in
        `TrainingData.user_ids` without interactions has an untrained (random) embedding,
        so its network scores would be noise.
        """
        scores = self._score_rows(users)
        cold = np.diff(self.seen.indptr)[users] == 0
        if cold.any():
            scores[cold] = self.cold_start_scores(query)
        return scores

    def _score_rows(self, users: IntArray) -> FloatArray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _scoring_cache(self) -> dict[str, Array32]:
        if self._cache is None:
            self._cache = self._compute_cache()
        return self._cache

    # -- pickling: numpy weights + params only --
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in self._TRANSIENT:
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._keras = None
        self._cache = None


# ---- the two models -----------------------------------------------------------------------
class MlpRecommender(_SampledNegativesRecommender):
    """Embeddings → MLP → sigmoid, trained with binary cross-entropy on sampled negatives.

    Architecture: concat(user_embedding[u], item_embedding[i]) → `hidden_layer_count` x
    Dense(`hidden_units`, ReLU) → Dense(1, sigmoid). Defaults: 3 x 200 units, Adam 0.001,
    batch 64, 10 epochs, 4 negatives per positive.

    Scoring: the first hidden layer acts on a concatenation, so its pre-activation splits
    into a user part (E_u W_u + b) and an item part (E_i W_i), each computed once per user
    or item; the remaining layers run on (users in chunk x all items) rows in numpy.
    `_score` returns the logit of the output unit.
    """

    name = "deep_mlp"
    Params = MlpParams

    def _build_keras(self, keras: Any, n_users: int, n_items: int) -> Any:
        p = cast(MlpParams, self.params)
        user_in = keras.Input(shape=(), dtype="int32", name="user")
        item_in = keras.Input(shape=(), dtype="int32", name="item")
        u = keras.layers.Embedding(n_users, p.embedding_dim, name="user_embedding")(user_in)
        v = keras.layers.Embedding(n_items, p.embedding_dim, name="item_embedding")(item_in)
        x = keras.layers.Concatenate(name="concat")([u, v])
        for k in range(p.hidden_layer_count):
            x = keras.layers.Dense(p.hidden_units, activation="relu", name=f"hidden_{k}")(x)
        out = keras.layers.Dense(1, activation="sigmoid", name="output")(x)
        return keras.Model({"user": user_in, "item": item_in}, out, name="deep_mlp")

    def _compute_cache(self) -> dict[str, Array32]:
        d = cast(MlpParams, self.params).embedding_dim
        kernel, bias = self._weights["hidden_0"]
        return {
            "user_part": self._weights["user_embedding"][0] @ kernel[:d] + bias,
            "item_part": self._weights["item_embedding"][0] @ kernel[d:],
        }

    def _score_rows(self, users: IntArray) -> FloatArray:
        """The network on every (user, all items) pair, a few users at a time, in two buffers.

        The cost is set by the hidden x hidden products: (layers - 1) x units² multiply-adds
        per pair (80,000 with the defaults), i.e. ~127 G multiply-adds for MovieLens 100K's
        943 x 1,682 pairs, several seconds of float32 BLAS on two cores. What is cheap to save
        is memory traffic: blocks of `_SCORE_BLOCK_ROWS` pairs (a few MB, cache-sized) are
        reused for every layer with in-place bias and ReLU, instead of allocating ~60 MB
        temporaries per layer (which cost as much time as the products themselves).
        """
        p = cast(MlpParams, self.params)
        cache = self._scoring_cache()
        user_part, item_part = cache["user_part"], cache["item_part"]
        n_items, units = item_part.shape
        out = np.empty((len(users), n_items), dtype=np.float32)
        chunk = max(1, _SCORE_BLOCK_ROWS // n_items)
        rows = min(chunk, len(users)) * n_items
        buffers = (np.empty((rows, units), dtype=np.float32), np.empty((rows, units), dtype=np.float32))
        output_kernel, output_bias = self._weights["output"]
        for start in range(0, len(users), chunk):
            block = users[start : start + chunk]
            n = len(block) * n_items
            h = buffers[0][:n]
            # First hidden layer: its pre-activation is user_part[u] + item_part[i].
            np.add(user_part[block][:, None, :], item_part[None, :, :], out=h.reshape(len(block), n_items, units))
            np.maximum(h, 0.0, out=h)
            for k in range(1, p.hidden_layer_count):
                kernel, bias = self._weights[f"hidden_{k}"]
                following = buffers[k % 2][:n]
                np.matmul(h, kernel, out=following)
                following += bias
                np.maximum(following, 0.0, out=following)
                h = following
            logits = h @ output_kernel[:, 0] + output_bias[0]
            out[start : start + len(block)] = logits.reshape(len(block), n_items)
        return out


class TwoTowerRecommender(_SampledNegativesRecommender):
    """Two towers whose dot product is the logit, trained with binary cross-entropy on sampled negatives.

    Architecture, per side: embedding(`embedding_dim`) → `tower_layer_count` x
    Dense(`tower_units`, ReLU) → Dense(`output_dim`, linear); logit = ⟨user vector, item vector⟩.
    The loss is sigmoid cross-entropy on the logit (from_logits), with `negatives` uniform
    unseen items per positive; sampled softmax would suit catalogues far larger than ours.

    Scoring: both towers are evaluated once for all users and all items (numpy), then a
    batch of users is scored by one matrix product.
    """

    name = "two_tower"
    Params = TwoTowerParams
    from_logits = True
    _item_text: Array32 | None = None  # only between `_prepare` and the end of training
    _uses_text: bool = False  # whether the item tower has the text input (pickled)

    def _prepare(self, data: TrainingData) -> None:
        p = cast(TwoTowerParams, self.params)
        self._item_text = None
        self._uses_text = bool(p.text_features) and any(text.strip() for text in data.item_text)
        if self._uses_text:
            self._item_text = item_text_features(data.item_text, p.text_features, p.seed)

    def _fit_notes(self) -> dict[str, Any]:
        p = cast(TwoTowerParams, self.params)
        if self._uses_text:
            return {"text_features": p.text_features}
        return {"text_features": 0, "text_features_off": "turned off" if not p.text_features else "no item text"}

    def _finish(self) -> None:
        self._item_text = None  # now in _weights["item_text"]

    def _build_keras(self, keras: Any, n_users: int, n_items: int) -> Any:
        p = cast(TwoTowerParams, self.params)

        def tower(side: str, size: int, inputs: Any) -> Any:
            x = keras.layers.Embedding(size, p.embedding_dim, name=f"{side}_embedding")(inputs)
            if side == "item" and self._uses_text:
                # Fixed per-item text vectors: a frozen lookup table, set after building.
                text = keras.layers.Embedding(size, p.text_features, trainable=False, name="item_text")(inputs)
                x = keras.layers.Concatenate(name="item_features")([x, text])
            for k in range(p.tower_layer_count):
                x = keras.layers.Dense(p.tower_units, activation="relu", name=f"{side}_hidden_{k}")(x)
            return keras.layers.Dense(p.output_dim, name=f"{side}_output")(x)

        user_in = keras.Input(shape=(), dtype="int32", name="user")
        item_in = keras.Input(shape=(), dtype="int32", name="item")
        logit = keras.layers.Dot(axes=1, name="dot")([tower("user", n_users, user_in), tower("item", n_items, item_in)])
        model = keras.Model({"user": user_in, "item": item_in}, logit, name="two_tower")
        if self._item_text is not None:
            model.get_layer("item_text").set_weights([self._item_text])
        return model

    def _tower(self, side: str) -> Array32:
        x = self._weights[f"{side}_embedding"][0]
        if side == "item" and "item_text" in self._weights:
            x = np.concatenate([x, self._weights["item_text"][0]], axis=1)
        for k in range(cast(TwoTowerParams, self.params).tower_layer_count):
            x = _dense(x, self._weights[f"{side}_hidden_{k}"], relu=True)
        return _dense(x, self._weights[f"{side}_output"], relu=False)

    def _compute_cache(self) -> dict[str, Array32]:
        return {"user": self._tower("user"), "item": self._tower("item")}

    def _score_rows(self, users: IntArray) -> FloatArray:
        cache = self._scoring_cache()
        return np.asarray(cache["user"][users] @ cache["item"].T, dtype=np.float32)
