from django.urls import path

from experiments import pages

app_name = "experiment_pages"
urlpatterns = [
    path("", pages.experiment_list, name="list"),
]
