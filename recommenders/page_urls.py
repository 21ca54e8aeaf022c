from django.urls import path

from recommenders import pages

app_name = "variants"
urlpatterns = [
    path("", pages.variant_list, name="list"),
]
