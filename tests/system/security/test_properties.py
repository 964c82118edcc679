"""Property-based tests (hypothesis) against a real API process, on SQLite and on PostgreSQL + Redis:
arbitrary file names, URL-ish strings, cursors and option values never get a 5xx, and every 4xx says why.

Bounded and reproducible: a fixed number of examples per property, derandomized, no example
database; each property also checks it saw both answers it expects (accepted and refused).
"""

import base64
import csv
import io
import json
import string
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, timedelta, timezone
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from imagebatch.core.options import JobOptions
from imagebatch.core.result_files import csv_text
from tests.harness.services import private_redis, scratch_database
from tests.harness.stack import Stack
from tests.system.security.conftest import PG_DB, make_key
from tests.system.security.test_auth import _jpeg

REDIS_DB = 15  # this module's own Redis database
BOUNDARY = "property-boundary-7f3a"
JPEG = _jpeg(1)
OPTION_FIELDS = list(JobOptions.model_fields)


def bounded(examples: int) -> settings:
    """Derandomized (the same examples on every run), no example database, a fixed budget."""
    return settings(
        max_examples=examples,
        deadline=None,  # a shared 2-core machine: the budget is the example count, not wall time per example
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )


class Api:
    """The API under test: its process, an authenticated client, a job with results to page through."""

    def __init__(self, stack: Stack, client: httpx.Client) -> None:
        self.stack, self.client = stack, client
        self.seen: Counter[tuple[str, int]] = Counter()
        for _ in range(2):  # two jobs of three images: a first page of one has a next_cursor on both routes
            response = client.post("/v1/jobs", json={"uris": [f"https://images.example.com/{i}.jpg" for i in range(3)]})
            assert response.status_code == 202, response.text
        self.job_id = response.json()["id"]

    def check(self, what: str, response: httpx.Response) -> httpx.Response:
        """Never a 5xx; a 4xx carries a non-empty detail message."""
        self.seen[(what, response.status_code)] += 1
        assert response.status_code < 500, (
            f"{what}: {response.request.method} {response.request.url} -> {response.status_code}: "
            f"{response.text[:300]}\n{self.stack.logs('api')[-3000:]}"
        )
        if response.status_code >= 400:
            detail = response.json().get("detail")
            assert isinstance(detail, str) and detail, response.text
        return response

    def statuses(self, what: str) -> set[int]:
        return {status for (name, status), _ in self.seen.items() if name == what}


@pytest.fixture(scope="module", params=["sqlite", "postgres+redis"])
def api(request, secure_env, tmp_path_factory) -> Iterator[Api]:
    """Auth on, private URLs refused, a webhook secret (so callback URLs get parsed), no tenant limits."""
    data_dir = tmp_path_factory.mktemp(f"properties-{request.param.replace('+', '-')}")
    env = {k: v for k, v in secure_env.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        IMAGEBATCH_DATA_DIR=str(data_dir),
        IMAGEBATCH_MAX_ACTIVE_JOBS_PER_TENANT="0",
        IMAGEBATCH_MAX_IMAGES_IN_FLIGHT_PER_TENANT="0",
        IMAGEBATCH_WEBHOOK_SECRET="properties-secret",
    )
    with ExitStack() as cleanup:
        if request.param == "postgres+redis":
            env["DATABASE_URL"] = cleanup.enter_context(scratch_database(PG_DB + "_properties"))
            env["REDIS_URL"] = cleanup.enter_context(private_redis(REDIS_DB))
        stack = Stack(env=env, log_dir=data_dir / "logs")
        cleanup.callback(stack.stop)
        stack.start_api()
        key = make_key(env.get("DATABASE_URL") or f"sqlite:///{data_dir}/imagebatch.sqlite", "properties")
        client = cleanup.enter_context(
            httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        )
        yield Api(stack, client)


def multipart(filename: bytes, fields: dict[str, str] | None = None) -> tuple[bytes, dict[str, str]]:
    """A raw multipart body: one JPEG whose filename bytes go into the header unescaped, then fields."""
    body = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; filename="'.encode()
        + filename
        + b'"\r\nContent-Type: image/jpeg\r\n\r\n'
        + JPEG
        + b"\r\n"
    )
    for name, value in (fields or {}).items():
        body += f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        body += value.encode("utf-8", "surrogatepass") + b"\r\n"
    body += f"--{BOUNDARY}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


# ---- file names -------------------------------------------------------------------------------

ANY_TEXT = st.characters(codec="utf-8")
FILE_NAMES = st.one_of(
    st.text(ANY_TEXT, max_size=200),
    st.text(st.characters(codec="utf-8", categories=["Cc", "Cf", "Zs", "Zl", "Zp", "Po", "Sm"]), max_size=40),
    st.builds(
        str.__add__,
        st.sampled_from(["..", "../../", "/", "\\", "C:\\", "=", "@", "-", "\t", "\r", "%00", "", ".", "~"]),
        st.text(ANY_TEXT, max_size=40),
    ),
    st.integers(900, 6000).map(lambda n: "n" * n + ".jpg"),
)


def _plain(name: str) -> bool:
    """A name that survives a multipart header as is (no quote, line break, backslash or NUL)."""
    return 0 < len(name) <= 1024 and not any(c in name for c in '"\r\n\\\x00')


def test_file_names_never_5xx_and_plain_ones_come_back_whole(api):
    @given(name=FILE_NAMES)
    @bounded(60)
    def upload(name: str) -> None:
        body, headers = multipart(name.encode("utf-8"))
        response = api.check("upload", api.client.post("/v1/jobs", content=body, headers=headers))
        if len(name) > 1024 and not any(c in name for c in '"\r\n\\\x00'):
            assert response.status_code == 400 and "file name" in response.json()["detail"], response.text
        if not _plain(name):
            return
        assert response.status_code == 202, (name, response.text)
        job_id = response.json()["id"]
        item = api.check("results", api.client.get(f"/v1/jobs/{job_id}/results")).json()["items"][0]
        assert item["source"] == name
        exported = api.check("csv", api.client.get(f"/v1/jobs/{job_id}/results.csv")).text
        rows = list(csv.reader(io.StringIO(exported, newline="")))
        assert rows[1][1] == csv_text(name), (name, rows[1][:3])

    upload()
    assert {202, 400} <= api.statuses("upload"), api.seen


# ---- URIs -------------------------------------------------------------------------------------

HOSTS = st.one_of(
    st.text(ANY_TEXT, max_size=20),
    st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
    st.ip_addresses(v=4).map(str),
    st.from_regex(r"[a-z0-9-]{1,12}(\.[a-z]{2,6}){0,2}", fullmatch=True),
    st.text(alphabet="[]:%.0123456789abcdefz", max_size=16),
    st.text(alphabet=string.ascii_letters + "-_." + "é", min_size=60, max_size=80),
)
PORTS = st.one_of(
    st.just(""), st.integers(-5, 100_000).map(lambda p: f":{p}"), st.text(ANY_TEXT, max_size=6).map(":{}".format)
)
URLISH = st.builds(
    "{}://{}{}/{}".format,
    st.sampled_from(["http", "https", "HTTP", "hTtPs", "file", "ftp", "gopher", "", "javascript"]),
    HOSTS,
    PORTS,
    st.text(ANY_TEXT, max_size=20),
)
URIS = st.one_of(
    URLISH, st.text(ANY_TEXT, max_size=80), st.sampled_from(["http://[::1/", "https://[zz]/", "http://h:99999/"])
)


def test_uris_never_5xx_and_a_refusal_names_the_entry(api):
    @given(uri=URIS)
    @bounded(120)
    def submit(uri: str) -> None:
        response = api.check(
            "uris", api.client.post("/v1/jobs", json={"uris": ["https://images.example.com/a.jpg", uri]})
        )
        assert response.status_code in (202, 422), response.text
        if response.status_code == 422:
            assert response.json()["detail"].startswith("uris[1]: "), response.text

    submit()
    assert {202, 422} <= api.statuses("uris"), api.seen


def test_callback_urls_never_5xx_and_a_refusal_names_the_field(api):
    @given(url=st.one_of(URLISH, st.text(ANY_TEXT, max_size=40)))
    @bounded(40)
    def submit(url: str) -> None:
        body = {"uris": ["https://images.example.com/a.jpg"], "callback_url": url}
        response = api.check("callback", api.client.post("/v1/jobs", json=body))
        assert response.status_code in (202, 422), response.text
        if response.status_code == 422:
            assert response.json()["detail"].startswith("callback_url: "), response.text

    submit()
    assert 422 in api.statuses("callback"), api.seen


# ---- cursors ----------------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(ANY_TEXT, max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=6,
)
OFFSETS = st.builds(timezone, st.timedeltas(min_value=-timedelta(hours=23), max_value=timedelta(hours=23)))
TIMES = st.datetimes(timezones=st.just(UTC) | OFFSETS | st.none()).map(lambda t: t.isoformat())
PAYLOADS = st.one_of(
    JSON_VALUES,
    st.fixed_dictionaries({"after": JSON_VALUES}),
    st.fixed_dictionaries({"after": st.integers()}),
    st.fixed_dictionaries({"c": JSON_VALUES | TIMES, "i": JSON_VALUES | st.text(ANY_TEXT, max_size=40)}),
)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


CURSORS = st.one_of(
    PAYLOADS.map(lambda p: _b64(json.dumps(p).encode())),
    st.binary(max_size=80).map(_b64),
    st.text(ANY_TEXT, max_size=80),
)


@pytest.mark.parametrize("route", ["jobs", "results"])
def test_cursors_are_a_page_or_400_never_anything_else(api, route):
    path = "/v1/jobs" if route == "jobs" else f"/v1/jobs/{api.job_id}/results"

    @given(cursor=CURSORS)
    @bounded(80)
    def page(cursor: str) -> None:
        response = api.check(route, api.client.get(path, params={"cursor": cursor, "limit": 1}))
        assert response.status_code in (200, 400), response.text
        if response.status_code == 400:
            assert response.json()["detail"].startswith("cursor: "), response.text

    page()
    handed_out = api.check(route, api.client.get(path, params={"limit": 1})).json()["next_cursor"]
    assert handed_out and api.check(route, api.client.get(path, params={"cursor": handed_out})).status_code == 200
    assert {200, 400} <= api.statuses(route), api.seen


# ---- option values ----------------------------------------------------------------------------

FIELD_NAMES = st.sampled_from([*OPTION_FIELDS, "colour", "files2", ""])


def test_form_fields_with_any_value_never_5xx(api):
    @given(fields=st.dictionaries(FIELD_NAMES, st.text(ANY_TEXT, max_size=60), max_size=4))
    @bounded(80)
    def submit(fields: dict[str, str]) -> None:
        body, headers = multipart(b"a.jpg", fields)
        api.check("form", api.client.post("/v1/jobs", content=body, headers=headers))

    submit()
    assert {202, 422} <= api.statuses("form"), api.seen


def test_json_options_with_any_value_never_5xx(api):
    @given(options=st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=4))
    @bounded(60)
    def submit(options: dict) -> None:
        # json.dumps, not httpx's json=: NaN and Infinity are sent as Python writes them.
        body = json.dumps({**options, "uris": ["https://images.example.com/a.jpg"]}).encode()
        api.check("json", api.client.post("/v1/jobs", content=body, headers={"content-type": "application/json"}))

    submit()
    assert {202, 422} <= api.statuses("json"), api.seen


QUERY = st.dictionaries(
    st.sampled_from(["label", "min_confidence", "max_entropy", "status", "errors_only", "include", "limit"]),
    st.text(ANY_TEXT, max_size=30),
    max_size=3,
)


@pytest.mark.parametrize("route", ["results", "results.csv", "results.parquet"])
def test_result_filters_and_job_ids_with_any_value_never_5xx(api, route):
    @given(params=QUERY, job_id=st.one_of(st.just(api.job_id), st.text(ANY_TEXT, max_size=40)))
    @example(params={"label": "tabby\x00"}, job_id=api.job_id)  # PostgreSQL refuses NUL in a string
    @example(params={}, job_id="a\x00b")
    @bounded(50)
    def query(params: dict[str, str], job_id: str) -> None:
        api.check(route, api.client.get(f"/v1/jobs/{quote(job_id, safe='')}/{route}", params=params))

    query()
    assert {200, 404} <= api.statuses(route) and api.statuses(route) & {400, 422}, api.seen
