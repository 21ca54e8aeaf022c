"""The experiment-side REST API under /api/v1/, composed from the apps that own each endpoint."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from analysis import api as analysis_api
from experiments import api as experiments_api
from offpolicy import api as offpolicy_api
from ops import api as ops_api
from serving import api as serving_api
from simulation import api as simulation_api

router = DefaultRouter()
router.register("experiments", experiments_api.ExperimentViewSet, basename="experiment")

urlpatterns = [
    path(
        "experiments/<slug:key>/recommendations",
        serving_api.RecommendationsView.as_view(),
        name="experiment-recommendations",
    ),
    path("events", serving_api.EventsView.as_view(), name="events"),
    path("experiments/<slug:key>/results/", analysis_api.ResultsView.as_view(), name="experiment-results"),
    path("experiments/<slug:key>/segments/", analysis_api.SegmentsView.as_view(), name="experiment-segments"),
    path(
        "experiments/<slug:key>/simulations",
        simulation_api.SimulationListView.as_view(),
        name="experiment-simulations",
    ),
    path(
        "experiments/<slug:key>/simulations/<int:run_id>",
        simulation_api.SimulationDetailView.as_view(),
        name="experiment-simulation",
    ),
    path(
        "experiments/<slug:key>/simulations/<int:run_id>/cancel",
        simulation_api.SimulationCancelView.as_view(),
        name="experiment-simulation-cancel",
    ),
    path("offpolicy-estimates", offpolicy_api.EstimateListView.as_view(), name="offpolicy-estimates"),
    path(
        "offpolicy-estimates/<int:estimate_id>", offpolicy_api.EstimateDetailView.as_view(), name="offpolicy-estimate"
    ),
    path("alerts", ops_api.AlertViewSet.as_view({"get": "list"}), name="alerts"),
    path(
        "alerts/<int:pk>/acknowledge",
        ops_api.AlertViewSet.as_view({"post": "acknowledge"}),
        name="alert-acknowledge",
    ),
    path("alerts/<int:pk>/resolve", ops_api.AlertViewSet.as_view({"post": "resolve"}), name="alert-resolve"),
    path("", include(router.urls)),
]
