from django.urls import path

from experiments import pages, report_pages

app_name = "experiment_pages"
urlpatterns = [
    path("", pages.experiment_list, name="list"),
    path("new/", pages.experiment_create, name="create"),
    path("plan/", pages.plan, name="plan"),
    path("offpolicy/<slug:name>/<int:version>/estimate/", pages.variant_estimate, name="estimate"),
    path("<slug:key>/", pages.experiment_detail, name="detail"),
    path("<slug:key>/actions/<slug:action>/", pages.experiment_action, name="action"),
    path("<slug:key>/ramp/", pages.experiment_ramp, name="ramp"),
    path("<slug:key>/simulate/", pages.experiment_simulate, name="simulate"),
    path("<slug:key>/simulations/<int:pk>/status/", pages.simulation_status, name="simulation-status"),
    path("<slug:key>/simulations/<int:pk>/cancel/", pages.simulation_cancel, name="simulation-cancel"),
    path("<slug:key>/simulations/<int:pk>/delete/", pages.simulation_delete, name="simulation-delete"),
    path("<slug:key>/results/", report_pages.results, name="results"),
    path("<slug:key>/segments/", report_pages.segments, name="segments"),
    path("<slug:key>/report/", report_pages.report, name="report"),
    path("<slug:key>/export.csv", report_pages.export_csv, name="export-csv"),
    path("<slug:key>/export.json", report_pages.export_json, name="export-json"),
    path("<slug:key>/decide/", report_pages.decide, name="decide"),
    path("<slug:key>/early-read/", report_pages.early_read, name="early-read"),
]
