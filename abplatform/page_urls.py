"""The experiment pages under /experiments/, composed from the apps that own each page."""

from django.urls import path

from analysis import pages as analysis_pages
from experiments import pages as experiment_pages
from offpolicy import pages as offpolicy_pages
from simulation import pages as simulation_pages

app_name = "experiment_pages"
urlpatterns = [
    path("", analysis_pages.experiment_list, name="list"),
    path("new/", experiment_pages.experiment_create, name="create"),
    path("plan/", experiment_pages.plan, name="plan"),
    path("offpolicy/<slug:name>/<int:version>/estimate/", offpolicy_pages.variant_estimate, name="estimate"),
    path("<slug:key>/", experiment_pages.experiment_detail, name="detail"),
    path("<slug:key>/actions/<slug:action>/", experiment_pages.experiment_action, name="action"),
    path("<slug:key>/ramp/", experiment_pages.experiment_ramp, name="ramp"),
    path("<slug:key>/simulate/", simulation_pages.experiment_simulate, name="simulate"),
    path("<slug:key>/simulations/<int:pk>/status/", simulation_pages.simulation_status, name="simulation-status"),
    path("<slug:key>/simulations/<int:pk>/cancel/", simulation_pages.simulation_cancel, name="simulation-cancel"),
    path("<slug:key>/simulations/<int:pk>/delete/", simulation_pages.simulation_delete, name="simulation-delete"),
    path("<slug:key>/results/", analysis_pages.results, name="results"),
    path("<slug:key>/segments/", analysis_pages.segments, name="segments"),
    path("<slug:key>/report/", analysis_pages.report, name="report"),
    path("<slug:key>/export.csv", analysis_pages.export_csv, name="export-csv"),
    path("<slug:key>/export.json", analysis_pages.export_json, name="export-json"),
    path("<slug:key>/decide/", analysis_pages.decide, name="decide"),
    path("<slug:key>/early-read/", analysis_pages.early_read, name="early-read"),
]
