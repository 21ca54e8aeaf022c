from django.urls import path

from recommenders import pages

app_name = "variants"
urlpatterns = [
    path("", pages.variant_list, name="list"),
    path("new/", pages.variant_register, name="register"),
    path("compare/", pages.variant_compare, name="compare"),
    path("<slug:name>/<int:version>/", pages.variant_detail, name="detail"),
    path("<slug:name>/<int:version>/train/", pages.variant_train, name="train"),
    path("<slug:name>/<int:version>/evaluate/", pages.variant_evaluate, name="evaluate"),
]
