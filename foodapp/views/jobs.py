"""The status API: GET /api/jobs/<job_id> and GET /api/batches/<batch_id>."""
import uuid

from pyramid.view import view_config

from foodapp.views import json_error, json_response


def is_uuid(value):
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@view_config(route_name="job", request_method="GET")
def job_status(request):
    job_id = request.matchdict["job_id"]
    if not is_uuid(job_id):
        return json_error(400, "bad_job_id", f"{job_id!r} is not a job id; job ids are UUIDs, as returned by the 202")
    job = request.registry.broker.jobs.get(job_id)
    if job is None:
        ttl = request.registry.foodapp.jobs_status_ttl
        return json_error(
            404, "job_not_found",
            f"no job {job_id}: it never existed, or it changed last more than {ttl} s ago and its status expired",
        )
    return json_response(200, job)


@view_config(route_name="batch", request_method="GET")
def batch_status(request):
    batch_id = request.matchdict["batch_id"]
    if not is_uuid(batch_id):
        return json_error(400, "bad_batch_id", f"{batch_id!r} is not a batch id; batch ids are UUIDs, as returned by POST /menu")
    batch = request.registry.broker.jobs.batch(batch_id)
    if batch is None:
        return json_error(404, "batch_not_found", f"no batch {batch_id}: it never existed, or it expired")
    return json_response(200, batch)
