"""Model objects under concurrent requests: every answer equals the answer to the same request sent alone.

One gunicorn worker with 8 threads, so that concurrent requests share the same model objects in one
process (the most contention a model can meet), fired from 8 client threads in a shuffled order.
"""

from __future__ import annotations

import base64
import random
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from models.samples import encode_jpeg
from tests.servers import start_api

ROUTES = ("/infer", "/models/mediapipe-face/infer", "/models/pose/infer", "/models/opencv-face/infer")
PICTURES = ("astronaut", "camera", "grace_hopper", "coffee", "chelsea")
ROUNDS = 3
CLIENTS = 8


@pytest.fixture(scope="module")
def threaded_api(tmp_path_factory, model_dir):
    server = start_api(tmp_path_factory.mktemp("threads"), "--threads", str(CLIENTS), workers=1)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bodies(picture) -> dict[str, dict]:
    return {name: {"image": {"base64": base64.b64encode(encode_jpeg(picture(name))).decode()}} for name in PICTURES}


def test_concurrent_answers_equal_single_answers(threaded_api, bodies):
    def send(job: tuple[str, str]) -> tuple[int, dict]:
        route, name = job
        response = requests.post(threaded_api.url + route, json=bodies[name], timeout=120)
        return response.status_code, response.json()

    jobs = [(route, name) for route in ROUTES for name in PICTURES]
    alone = {job: send(job) for job in jobs}
    assert all(status == 200 for status, _ in alone.values()), alone
    assert sum(len(answer["results"]) for _, answer in alone.values()) >= 30  # real detections to compare (37 here)
    assert not any(answer.get("warnings") for _, answer in alone.values())

    crowd = jobs * ROUNDS
    random.Random(7).shuffle(crowd)
    with ThreadPoolExecutor(CLIENTS) as pool:
        together = list(pool.map(send, crowd))
    mismatches = [job for job, answer in zip(crowd, together, strict=True) if answer != alone[job]]
    assert mismatches == [], f"{len(mismatches)} of {len(crowd)} concurrent answers differ, e.g. {mismatches[:3]}"
