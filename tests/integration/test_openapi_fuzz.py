"""schemathesis against ``/openapi.json``, in process.

Every route gets requests generated from its schema, valid and invalid
(up to 150 per operation, deterministic). Each answer must be
what the document promises (status, content type, body schema); no request
gets a server error; a valid request is never refused (but for an `at` over
ten years ahead and a cursor not made here, which no schema can say) and an invalid one is never
accepted; and a refused request leaves every store file as it was.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance

from asyncjobs import Client
from asyncjobs.http.app import App

from ..conftest import data_files, sha256_of

pytestmark = pytest.mark.slow

# schemathesis builds its tests when this module is collected, so the app
# and its store exist from then on, in a folder of their own.
FOLDER = Path(tempfile.mkdtemp(prefix="asyncjobs-openapi-"))
STORE = FOLDER / "store.v1.json"
CLIENT = Client(STORE)
CLIENT.init_store()
schema = schemathesis.openapi.from_wsgi("/openapi.json", App(CLIENT))
schema.config.generation.update(max_examples=150, deterministic=True)


@pytest.fixture(scope="module", autouse=True)
def _remove_the_store():
    yield
    CLIENT.close()
    shutil.rmtree(FOLDER, ignore_errors=True)


def documented_refusal(response) -> bool:
    """The refusals of schema-valid input that the docs promise.

    JSON Schema cannot say "at most ten years from now", so an `at` further
    ahead matches the document and is answered 400 naming `at`; nor can it
    tell a cursor this server made from other text of the same shape, which
    is answered 400 naming `cursor` (docs/http-api.md). Every other check
    still applies to those answers.
    """
    if response.status_code != 400:
        return False
    message = response.json()["error"]["message"]
    return (message.startswith("at: ") and "ahead" in message) or message.startswith(
        "cursor: "
    )


@schema.parametrize()
def test_every_route_answers_as_its_document_says(case):
    before = sha256_of(*data_files(STORE))
    response = case.call()
    case.validate_response(
        response,
        excluded_checks=[positive_data_acceptance]
        if documented_refusal(response)
        else [],
    )
    if response.status_code >= 400:
        assert sha256_of(*data_files(STORE)) == before
