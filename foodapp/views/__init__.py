"""The HTTP views. Every answer is JSON, errors included."""
from foodapp.urls import Response  # its Location goes out as written, never made absolute from Host

from foodapp.jobs import encode


def json_response(status, body, **headers):
    response = Response(
        body=encode(body).encode("utf-8"), status=status,
        content_type="application/json", charset="utf-8",
    )
    response.headers.update(headers)
    return response


def json_error(status, error, message, **headers):
    """An error answer: a short machine name and a message that says what to do."""
    return json_response(status, {"error": error, "message": message}, **headers)
