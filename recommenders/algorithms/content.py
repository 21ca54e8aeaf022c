"""Content-based recommender and search ranker over item text with TF-IDF (scikit-learn).

Each item j is a TF-IDF vector x_j (L2-normalised) of its text: `TrainingData.item_text`
(title and description) followed by `item_category`. A user's profile is the weighted mean
of the vectors of the items in their history, p_u = Σ_j w_uj x_j (weights are 1, or the
interaction values when `use_values`), L2-normalised. Then

    personal(u, i) = cos(p_u, x_i)          query(q, i) = cos(tfidf(q), x_i)
    score(u, i)    = (1 - query_weight) · personal(u, i) + query_weight · query(q, i)

with `query_weight` applying only when a query is given. Both terms lie in [0, 1], so the
blend weight means what it says. Cold start: with a query, the pure query ranking; without
one, the base class's popularity fallback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommenders.algorithms.base import (
    FitReport,
    FloatArray,
    IntArray,
    ParameterError,
    ProgressCallback,
    Recommender,
    RecommenderError,
    TrainingData,
)


@dataclass(frozen=True)
class ContentParams:
    query_weight: float = 0.7
    max_features: int = 50_000
    ngram_max: int = 1
    min_df: int = 1
    sublinear_tf: bool = True
    use_values: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.query_weight <= 1.0:
            raise ParameterError("query_weight", "must lie in [0, 1]")
        if self.max_features < 1:
            raise ParameterError("max_features", "must be at least 1")
        if not 1 <= self.ngram_max <= 3:
            raise ParameterError("ngram_max", "must be 1, 2 or 3")
        if self.min_df < 1:
            raise ParameterError("min_df", "must be at least 1")


def item_documents(data: TrainingData) -> list[str]:
    """One text per item: its text then its category ('' where missing)."""
    texts = data.item_text or ("",) * data.n_items
    categories = data.item_category or ("",) * data.n_items
    return [f"{text} {category}".strip() for text, category in zip(texts, categories, strict=True)]


class TfidfContentRecommender(Recommender):
    name = "content_tfidf"
    Params = ContentParams
    params: ContentParams
    supports_query = True

    def _fit(self, data: TrainingData, progress: ProgressCallback) -> FitReport:
        from sklearn.feature_extraction.text import TfidfVectorizer

        documents = item_documents(data)
        if not any(documents):
            raise RecommenderError("content_tfidf needs item text or categories; this data set has none.")
        self.vectorizer: Any = TfidfVectorizer(
            max_features=self.params.max_features,
            ngram_range=(1, self.params.ngram_max),
            min_df=self.params.min_df,
            sublinear_tf=self.params.sublinear_tf,
            dtype=np.float32,
        )
        self.item_vectors: sp.csr_matrix = sp.csr_matrix(self.vectorizer.fit_transform(documents))
        self.history: sp.csr_matrix = data.matrix(binary=not self.params.use_values)
        return FitReport(notes={"vocabulary_size": len(self.vectorizer.vocabulary_)})

    def _personal_scores(self, users: IntArray) -> FloatArray:
        from sklearn.preprocessing import normalize

        profiles = normalize(self.history[users] @ self.item_vectors)
        return np.asarray((profiles @ self.item_vectors.T).toarray(), dtype=np.float32)

    def query_scores(self, query: str) -> FloatArray:
        """cos(tfidf(query), x_i) for every item; all zero when no query word is known."""
        vector = self.vectorizer.transform([query])
        return np.asarray((self.item_vectors @ vector.T).toarray().ravel(), dtype=np.float32)

    def _score(self, users: IntArray, query: str | None = None) -> FloatArray:
        personal = self._personal_scores(users)
        if not query:
            return personal
        w = self.params.query_weight
        return np.asarray((1.0 - w) * personal + w * self.query_scores(query)[None, :], dtype=np.float32)

    def cold_start_scores(self, query: str | None = None) -> FloatArray:
        """Pure query ranking when a query is given (popularity breaks ties); else popularity."""
        if not query:
            return self.popularity.copy()
        # A tiny popularity term orders items the query does not separate (e.g. no match at all).
        return np.asarray(self.query_scores(query) + 1e-6 * self.popularity, dtype=np.float32)
