"""The test store itself: what it must get right for the download tests to mean anything."""

from __future__ import annotations

import requests

from tests.store import LocalStore


def test_an_oss_signature_with_four_slashes_still_reaches_s3(
    store: LocalStore, bucket_name: str
) -> None:
    # moto reads "<...>/<date>/<region>/<service>/<...>" out of any Authorization header;
    # this one used to be routed to a service "zZYJEv" and answered 500, one oss2
    # request in ~1,400, which showed up as retries the tests had not caused.
    store.put(bucket_name, "k", b"abc")
    with requests.Session() as session:
        session.trust_env = False
        answer = session.get(
            f"{store.endpoint}/{bucket_name}/k",
            headers={"Authorization": "OSS test:ab/cd/zZYJEv/y/Q+="},
            timeout=30,
        )
    assert answer.status_code == 200
    assert answer.content == b"abc"
    assert [seen.method for seen in store.requests(bucket_name) if seen.key == "k"][-1] == "GET"
