"""Platform-wide pages."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from recommenders.models import Dataset


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html", {"section": "home", "datasets": Dataset.objects.all()})
