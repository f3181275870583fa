"""The OpenAPI 3.1 document of the HTTP API (``GET /openapi.json``)."""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..domain import bulk, paging, validation
from ..records import JobStatus

_ERROR = {"$ref": "#/components/schemas/Error"}
_CURSOR = {
    "type": "string",
    "maxLength": paging.MAX_CURSOR_CHARS,
    "pattern": "^[A-Za-z0-9_-]*(\\.[A-Za-z0-9_-]+)?$",
}
_NAME = {"type": "string", "pattern": f"^{validation.NAME_PATTERN.pattern}$"}
_STATUS = "|".join(status.value for status in JobStatus)
_TENANT = [
    {
        "name": "X-Org-Id",
        "in": "header",
        "required": True,
        "description": (
            "The tenant. X-Tenant-Id is accepted in its place; sent together, "
            "the two must be equal, and neither may be empty."
        ),
        "schema": _NAME,
    },
]
# Any JSON value the store keeps exactly: integers within 64 bits.
_JSON_VALUE: dict[str, Any] = {
    "anyOf": [
        {"type": "null"},
        {"type": "boolean"},
        {"type": "string"},
        {
            "type": "integer",
            "minimum": validation.INT_MIN,
            "maximum": validation.INT_MAX,
        },
        {"type": "number", "not": {"type": "integer"}},
        {"type": "array", "items": {"$ref": "#/components/schemas/JsonValue"}},
        {
            "type": "object",
            "additionalProperties": {"$ref": "#/components/schemas/JsonValue"},
        },
    ]
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }


def _errors(*codes: int) -> dict[str, Any]:
    """The error answers of a route; 401 and 403 on every one (serve --auth tokens)."""
    words = {
        400: "Invalid input, or no tenant header, or tenant headers that disagree",
        401: "With serve --auth tokens: no bearer token, or one not live",
        403: "With serve --auth tokens: the token is not for this org, or a "
        "viewer's on a POST, /metrics or /telemetry",
        404: "Missing, or another org's",
        409: "The job's status does not allow it",
        413: "Body over the limit",
        503: "Store unavailable",
    }
    return {
        str(code): _json(_ERROR, words[code]) for code in sorted({*codes, 401, 403})
    }


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(properties), "properties": properties}


# The telemetry contract's types: no key is ever null, readable store or not.
ASYNC_SCHEMA = _object(
    {
        "async_enabled": {"type": "boolean"},
        "worker_seen": {"type": "boolean"},
        "materializer_stale": {"type": "boolean"},
        "last_materialize_ts": {"type": "string"},
        "blocked_mutations_count": {"type": "integer", "minimum": 0},
        "queue_depth": {"type": "integer", "minimum": 0},
        "running": {"type": "integer", "minimum": 0},
        "failed_1h": {"type": "integer", "minimum": 0},
        "oldest_queued_age_s": {"type": "number"},
        "breakers": {"type": "object", "additionalProperties": {"type": "string"}},
        "degraded": {"type": "boolean"},
    }
)
GRAPH_SCHEMA = _object(
    {
        "layers": {
            "type": "array",
            "items": _object(
                {
                    "name": {"type": "string"},
                    "status": {"enum": ["live", "stale", "unknown"]},
                    "last_update_ts": {"type": "string"},
                }
            ),
        },
        "stale_after_ms": {"type": "integer"},
        "summary": _object(
            {
                "live_count": {"type": "integer", "minimum": 0},
                "stale_count": {"type": "integer", "minimum": 0},
                "unknown_count": {"type": "integer", "minimum": 0},
                "integrity_degraded": {"type": "boolean"},
            }
        ),
    }
)
HEALTH_SCHEMA = {
    "type": "object",
    "required": ["status", "checked_at", "async"],
    "properties": {
        "status": {"enum": ["ok", "unavailable"]},
        "checked_at": {"type": "string"},
        "store_generation": {"type": "integer"},
        "async": ASYNC_SCHEMA,
    },
}
TELEMETRY_SCHEMA = {
    "type": "object",
    "required": ["timestamp", "started_utc", "requests", "async", "graph", "degraded"],
    "properties": {
        "timestamp": {"type": "string"},
        "started_utc": {"type": "string"},
        "requests": {"type": "object"},
        "async": ASYNC_SCHEMA,
        "graph": GRAPH_SCHEMA,
        "degraded": {"type": "boolean"},
    },
}


def _limit(maximum: int) -> dict[str, Any]:
    return {
        "name": "limit",
        "in": "query",
        "description": "At most this many on the page",
        "schema": {"type": "integer", "minimum": 1, "maximum": maximum},
    }


def _bulk_body(action: str) -> dict[str, Any]:
    statuses = {"enum": list(bulk.STATUSES[action])}
    time = {"type": ["string", "null"], "format": "date-time"}
    properties: dict[str, Any] = {
        "status": {
            "anyOf": [
                statuses,
                {"type": "array", "items": statuses, "minItems": 1},
                {"type": "null"},
            ],
            "description": f"Default: {', '.join(bulk.DEFAULT_STATUSES[action])}",
        },
        "queue": {**_NAME, "type": ["string", "null"]},
        "task": {**_NAME, "type": ["string", "null"]},
        "created_before": {**time, "description": "Submitted before this time"},
        "error_type": {
            "type": ["string", "null"],
            "minLength": 1,
            "maxLength": bulk.MAX_ERROR_TYPE_CHARS,
            "description": "The last attempt's error type",
        },
        "dry_run": {
            "type": "boolean",
            "description": "Count what would change, change nothing",
        },
        "limit": {
            "type": "integer",
            "minimum": 1,
            "maximum": bulk.MAX_JOBS,
            "description": f"At most this many jobs, newest first "
            f"(default {bulk.MAX_JOBS})",
        },
    }
    if action == "retry":
        properties["failed_since"] = {**time, "description": "Ended at or after"}
    return {"type": "object", "additionalProperties": False, "properties": properties}


def _bulk_path(action: str) -> dict[str, Any]:
    schema = "BulkRetry" if action == "retry" else "BulkCancel"
    return {
        "post": {
            "operationId": f"bulk{action.title()}",
            "description": f"{action.title()} the org's jobs that match, newest "
            "first, at most `limit` in one transaction",
            "parameters": _TENANT,
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{schema}"}
                    }
                },
            },
            "responses": {
                "200": _json(
                    {"$ref": "#/components/schemas/Bulk"},
                    "What matched (a dry run) or changed",
                ),
                **_errors(400, 413, 503),
            },
        }
    }


def _act_path(operation: str, done: str, job_id: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "operationId": operation,
            "parameters": [job_id, *_TENANT],
            "responses": {
                "200": _json({"$ref": "#/components/schemas/Job"}, done),
                **_errors(400, 404, 409, 413, 503),
            },
        }
    }


def document() -> dict[str, Any]:
    job_id = {
        "name": "job_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "asyncjobs",
            "version": __version__,
            "description": "Jobs, result permalinks and notifications of one tenant.",
        },
        "paths": {
            "/health": {
                "get": {
                    "operationId": "health",
                    "security": [],  # open with every --auth
                    "responses": {
                        "200": _json(HEALTH_SCHEMA, "The store is readable"),
                        "503": _json(HEALTH_SCHEMA, "The store is not readable"),
                    },
                }
            },
            "/telemetry": {
                "get": {
                    "operationId": "telemetry",
                    "responses": {
                        "200": _json(
                            TELEMETRY_SCHEMA,
                            "Always answered; degraded flags when the store is not readable",
                        ),
                        **_errors(),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text exposition",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **_errors(),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "responses": {
                        "200": _json({"type": "object"}, "This document"),
                        **_errors(),
                    },
                }
            },
            "/analyze/jobs": {
                "get": {
                    "operationId": "listJobs",
                    "parameters": [
                        *_TENANT,
                        {
                            "name": "status",
                            "in": "query",
                            "description": "Only jobs in this status, or in one of "
                            "these, comma-separated",
                            "schema": {
                                "type": "string",
                                "pattern": f"^({_STATUS})(,({_STATUS}))*$",
                            },
                        },
                        {"name": "queue", "in": "query", "schema": _NAME},
                        {"name": "task", "in": "query", "schema": _NAME},
                        _limit(validation.MAX_LIMIT),
                        {
                            "name": "cursor",
                            "in": "query",
                            "description": (
                                "The next_cursor of the page before, asked with the "
                                "same filters (a cursor of other filters or another "
                                "org, or a damaged one, answers 400); empty or "
                                "absent: the first page"
                            ),
                            "schema": _CURSOR,
                        },
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["jobs"],
                                "properties": {
                                    "jobs": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/Job"},
                                    },
                                    "next_cursor": {
                                        **_CURSOR,
                                        "description": "Present when more jobs "
                                        "follow: ask again with it",
                                    },
                                },
                            },
                            "The org's jobs, newest first by (created_at, job_id)",
                        ),
                        **_errors(400, 503),
                    },
                },
                "post": {
                    "operationId": "submitJob",
                    "parameters": _TENANT,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Submission"}
                            }
                        },
                    },
                    "responses": {
                        "202": _json(
                            {"$ref": "#/components/schemas/Submitted"}, "Queued"
                        ),
                        **_errors(400, 413, 503),
                    },
                },
            },
            "/analyze/jobs/retry": _bulk_path("retry"),
            "/analyze/jobs/cancel": _bulk_path("cancel"),
            "/analyze/jobs/{job_id}/retry": _act_path(
                "retryJob", "Queued again as its next run", job_id
            ),
            "/analyze/jobs/{job_id}/cancel": _act_path(
                "cancelJob",
                "Canceled, or still running with cancel_requested_at set",
                job_id,
            ),
            "/analyze/jobs/{job_id}": {
                "get": {
                    "operationId": "getJob",
                    "parameters": [job_id, *_TENANT],
                    "responses": {
                        "200": _json({"$ref": "#/components/schemas/Job"}, "The job"),
                        **_errors(400, 404, 503),
                    },
                }
            },
            "/analyze/jobs/{job_id}/notifications": {
                "get": {
                    "operationId": "jobNotifications",
                    "parameters": [
                        job_id,
                        *_TENANT,
                        {
                            "name": "channel",
                            "in": "query",
                            "schema": {"type": "string", "enum": ["in_app"]},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "description": "At most this many on the page",
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": validation.MAX_LIMIT,
                            },
                        },
                        {
                            "name": "cursor",
                            "in": "query",
                            "description": (
                                "The next_cursor of the page before, asked with the "
                                "same channel (a cursor of another job, org or "
                                "channel, or a damaged one, answers 400); empty or "
                                "absent: the first page"
                            ),
                            "schema": _CURSOR,
                        },
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["job_id", "notifications"],
                                "properties": {
                                    "job_id": {"type": "string"},
                                    "notifications": {
                                        "type": "array",
                                        "items": {
                                            "$ref": "#/components/schemas/Notification"
                                        },
                                    },
                                    "next_cursor": {
                                        **_CURSOR,
                                        "description": "Present when more "
                                        "notifications follow: ask again with it",
                                    },
                                },
                            },
                            "Latest first by (created_at, notification_id)",
                        ),
                        **_errors(400, 404, 503),
                    },
                }
            },
            "/analyze/inbox": {
                "get": {
                    "operationId": "inbox",
                    "parameters": [
                        *_TENANT,
                        {
                            "name": "unread",
                            "in": "query",
                            "schema": {"type": "string", "enum": ["true", "false"]},
                        },
                        _limit(validation.MAX_LIMIT),
                        {
                            "name": "cursor",
                            "in": "query",
                            "description": "The next_cursor of the page before",
                            "schema": _CURSOR,
                        },
                    ],
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["notifications"],
                                "properties": {
                                    "notifications": {
                                        "type": "array",
                                        "items": {
                                            "$ref": "#/components/schemas/Notification"
                                        },
                                    },
                                    "next_cursor": _CURSOR,
                                },
                            },
                            "The org's in-app notifications, latest first",
                        ),
                        **_errors(400, 503),
                    },
                }
            },
            "/analyze/inbox/mark-read": {
                "post": {
                    "operationId": "markRead",
                    "parameters": _TENANT,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/MarkRead"}
                            }
                        },
                    },
                    "responses": {
                        "200": _json(
                            _object({"marked": {"type": "integer", "minimum": 0}}),
                            "How many were unread and are now read",
                        ),
                        **_errors(400, 404, 413, 503),
                    },
                }
            },
            "/analyze/queues": {
                "get": {
                    "operationId": "queues",
                    "parameters": _TENANT,
                    "responses": {
                        "200": _json(
                            _object(
                                {
                                    "queues": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/Queue"},
                                    }
                                }
                            ),
                            "Each queue with queued or running jobs of the org",
                        ),
                        **_errors(400, 503),
                    },
                }
            },
            "/analyze/breakers": {
                "get": {
                    "operationId": "breakers",
                    "parameters": _TENANT,
                    "responses": {
                        "200": _json(
                            _object(
                                {
                                    "breakers": {
                                        "type": "array",
                                        "items": {
                                            "$ref": "#/components/schemas/Breaker"
                                        },
                                    }
                                }
                            ),
                            "Every breaker, by name",
                        ),
                        **_errors(400, 503),
                    },
                }
            },
            "/analyze/breakers/{name}/reset": {
                "post": {
                    "operationId": "resetBreaker",
                    "parameters": [
                        {
                            "name": "name",
                            "in": "path",
                            "required": True,
                            "schema": _NAME,
                        },
                        *_TENANT,
                    ],
                    "responses": {
                        "200": _json(
                            {"$ref": "#/components/schemas/Breaker"}, "Closed"
                        ),
                        **_errors(400, 404, 413, 503),
                    },
                }
            },
            "/analyze/results/{result_id}": {
                "get": {
                    "operationId": "getResult",
                    "parameters": [
                        {
                            "name": "result_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        *_TENANT,
                        {
                            "name": "view",
                            "in": "query",
                            "schema": {"type": "string", "enum": ["latest", "pinned"]},
                        },
                    ],
                    "responses": {
                        "200": _json(
                            {"$ref": "#/components/schemas/Permalink"},
                            "The result version served",
                        ),
                        **_errors(400, 404, 503),
                    },
                }
            },
        },
        # serve --auth tokens: a bearer token (asyncjobs tokens create) on every
        # route but /health; without it, none
        "security": [{}, {"bearer": []}],
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An access token, tok_….<secret>",
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                        }
                    },
                },
                "JsonValue": _JSON_VALUE,
                "Submission": {
                    "type": "object",
                    "required": ["task"],
                    "additionalProperties": False,
                    # Every optional field may be null (as good as absent);
                    # a delay above 0 and a time exclude each other.
                    "not": {
                        "required": ["delay", "at"],
                        "properties": {
                            "delay": {"type": "number", "exclusiveMinimum": 0},
                            "at": {"type": "string"},
                        },
                    },
                    "properties": {
                        "task": _NAME,
                        "payload": {
                            "type": ["object", "null"],
                            "additionalProperties": {
                                "$ref": "#/components/schemas/JsonValue"
                            },
                            "description": "At most ASYNCJOBS_MAX_PAYLOAD_BYTES "
                            "(1 MiB) as UTF-8 JSON",
                        },
                        "queue": {**_NAME, "type": ["string", "null"]},
                        "priority": {
                            "type": ["integer", "null"],
                            "minimum": 0,
                            "maximum": 9,
                        },
                        "delay": {
                            "type": ["number", "null"],
                            "minimum": 0,
                            "maximum": validation.MAX_DELAY_SECONDS,
                        },
                        "at": {"type": ["string", "null"], "format": "date-time"},
                        "idempotency_key": {
                            "type": ["string", "null"],
                            "minLength": 1,
                            "maxLength": validation.MAX_IDEMPOTENCY_KEY,
                            "pattern": "^[ -~]+$",  # printable ASCII
                        },
                        "max_retries": {
                            "type": ["integer", "null"],
                            "minimum": 0,
                            "maximum": validation.MAX_RETRIES_LIMIT,
                        },
                        "allow_unknown": {
                            "type": ["boolean", "null"],
                            "description": "Queue a task that neither the server's "
                            "app nor the task catalog knows (otherwise 400)",
                        },
                    },
                },
                "MarkRead": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "ids": {
                            "type": ["array", "null"],
                            "items": {"type": "string"},
                            "minItems": 1,
                        },
                        "all": {"type": "boolean"},
                    },
                    # the org's notifications by id, or all of them
                    "oneOf": [
                        {
                            "required": ["ids"],
                            "properties": {
                                "ids": {"type": "array"},
                                "all": {"const": False},
                            },
                        },
                        {
                            "required": ["all"],
                            "properties": {
                                "all": {"const": True},
                                "ids": {"type": "null"},
                            },
                        },
                    ],
                },
                "Queue": _object(
                    {
                        "queue": {"type": "string"},
                        "depth": {"type": "integer", "minimum": 0},
                        "runnable": {"type": "integer", "minimum": 0},
                        "delayed": {"type": "integer", "minimum": 0},
                        "running": {"type": "integer", "minimum": 0},
                        "lag_s": {"type": "number", "minimum": 0},
                        "held": {"type": "integer", "minimum": 0},
                    }
                ),
                "Breaker": {
                    "type": "object",
                    "required": ["name", "state", "failure_count", "tasks"],
                    "properties": {
                        "name": {"type": "string"},
                        "state": {"enum": ["closed", "open", "half_open"]},
                        "failure_count": {"type": "integer", "minimum": 0},
                        "tasks": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "BulkRetry": _bulk_body("retry"),
                "BulkCancel": _bulk_body("cancel"),
                "Bulk": {
                    "type": "object",
                    "required": ["action", "dry_run", "count", "ids", "more"],
                    "properties": {
                        "action": {"enum": list(bulk.ACTIONS)},
                        "dry_run": {"type": "boolean"},
                        "count": {"type": "integer", "minimum": 0},
                        "ids": {"type": "array", "items": {"type": "string"}},
                        "more": {
                            "type": "boolean",
                            "description": "Jobs that match remain: call again",
                        },
                    },
                },
                "Submitted": {
                    "type": "object",
                    "required": ["job_id", "status"],
                    "properties": {
                        "job_id": {"type": "string"},
                        "status": {"type": "string"},
                        "deduplicated": {"type": "boolean"},
                    },
                },
                "Job": {
                    "type": "object",
                    "required": [
                        "job_id",
                        "org_id",
                        "task",
                        "queue",
                        "priority",
                        "status",
                        "attempts",
                        "result_id",
                        "error",
                        "created_at",
                        "updated_at",
                    ],
                },
                "Notification": {
                    "type": "object",
                    "required": [
                        "notification_id",
                        "job_id",
                        "org_id",
                        "channel",
                        "event_type",
                        "dedupe_key",
                        "created_at",
                        "read_at",
                    ],
                },
                "Permalink": {
                    "type": "object",
                    "required": [
                        "result_id",
                        "requested_result_id",
                        "projection_mode",
                        "job_id",
                        "org_id",
                        "task",
                        "value",
                        "created_at",
                    ],
                },
            },
        },
    }
