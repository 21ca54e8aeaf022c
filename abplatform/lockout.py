"""What a locked-out login gets (django-axes' AXES_LOCKOUT_CALLABLE): 429 with Retry-After.

After ABPLATFORM_LOGIN_FAILURE_LIMIT wrong passwords for one username from one address, that pair
is refused for ABPLATFORM_LOGIN_COOLOFF_MINUTES, whatever the password; a right password before
then resets the count. The page touches no database and says when to try again.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.html import escape

LOCKED_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Too many failed logins</title></head>
<body><h1>Too many failed logins</h1>
<p>{what} is locked for {minutes} minutes after {limit} wrong passwords in a row. Try again later, or ask an
administrator to unlock it (<code>manage.py axes_reset_username USERNAME</code>).</p>
</body></html>
"""


def lockout_response(request: HttpRequest, original_response: Any = None, credentials: Any = None) -> HttpResponse:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    what = f"Logging in as {escape(username)} from this address" if username else "Logging in from this address"
    page = LOCKED_PAGE.format(what=what, minutes=minutes, limit=settings.AXES_FAILURE_LIMIT)
    return HttpResponse(page, status=429, headers={"Retry-After": str(minutes * 60)})
