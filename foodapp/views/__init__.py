"""The HTTP views. Every answer is JSON, errors included."""
from foodapp.urls import Response  # its Location goes out as written, never made absolute from Host

from foodapp.jobs import encode


def json_response(status, body, **headers):
    # Its headers given whole: WebOb's content_type and headers.update cost a third more.
    return Response(body=encode(body).encode("utf-8"), status=status,
                    headerlist=[("Content-Type", "application/json"), *headers.items()])


def json_error(status, error, message, **headers):
    """An error answer: a short machine name and a message that says what to do."""
    return json_response(status, {"error": error, "message": message}, **headers)
