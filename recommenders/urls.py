from django.urls import include, path
from rest_framework.routers import DefaultRouter

from recommenders import api

router = DefaultRouter()
router.register("variants", api.VariantViewSet, basename="variant")
router.register("training-runs", api.TrainingRunViewSet, basename="training-run")
router.register("evaluations", api.EvaluationViewSet, basename="evaluation")

urlpatterns = [
    path("algorithms/", api.AlgorithmList.as_view(), name="algorithm-list"),
    path("", include(router.urls)),
]
