"""A regulator's whole visit in a real headless Chromium (Debian's, driven by Playwright):
sign in with a pasted token, search the task, open it, run its verification, read the
checks, save a screenshot.

The app is served by uvicorn on a free port of 127.0.0.1 over SERVICE's scenario: the
index of a real anvil chain holding a task completed by real nodes, whose evidence the
regulator's node fetches over gRPC when the page runs the verification. The token comes
from a real EIP-712 signature by the regulator admin's key (AUTH's client); the creator's
disclosed parameters are pasted so that the parameter commitment is checked too. The checks
the page shows are compared with ``verify_task`` run on the nodes' own transcripts.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, sync_playwright

from auditor.api.context import ServiceContext
from auditor.auth.client import sign_in
from auditor.pages.render import verdict
from auditor.replay import deployment_checks, task_history
from auditor.verify.run import verify_task
from tests.auditor.pages.conftest import scenario_app
from tests.auditor.service_scenario import Scenario

pytestmark = pytest.mark.anvil
CHROMIUM = Path("/usr/bin/chromium")


@dataclass
class Served:
    base: str
    ctx: ServiceContext


@pytest.fixture(scope="module")
def served(service_scenario: Scenario) -> Iterator[Served]:
    """The app on 127.0.0.1 at a port the kernel picked (bound before uvicorn starts, so
    no other process can take it in between); its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    app, ctx = scenario_app(service_scenario, base)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield Served(base, ctx)
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium (.ci/run does)")
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


def test_a_regulator_signs_in_finds_a_task_and_verifies_it(
    service_scenario: Scenario, served: Served, browser: Browser, tmp_path: Path
) -> None:
    s, base = service_scenario, served.base
    task_hex = "0x" + s.task_id.hex()
    token = sign_in(base, s.consortium.orgs["regulator"].admin)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    page.goto(f"{base}/tasks")  # signed out: sent to the sign-in page
    assert page.url.startswith(f"{base}/signin")
    assert "provnet auditor token --url" in page.locator("pre.cmd").inner_text()
    page.fill("#token", token)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(f"{base}/tasks")
    assert page.locator(".who-name").inner_text() == "regulator"
    block = s.index.status().complete_up_to
    assert page.locator("#complete-block").inner_text() == str(block)

    page.fill("input[name=q]", task_hex[:12])
    page.click("#task-search button[type=submit]")
    page.wait_for_load_state()
    rows = page.locator("#tasks tbody tr")
    assert rows.count() == 1
    rows.first.locator("a").click()
    page.wait_for_url(f"{base}/tasks/{task_hex}")
    assert page.locator("#task-id").inner_text() == task_hex
    assert page.locator("#no-verification").is_visible()

    page.click("#verification summary")  # the creator's disclosed parameters
    page.fill("textarea[name=params]", json.dumps(s.result_answer))
    page.click("#run-verification")
    page.wait_for_url(f"{base}/tasks/{task_hex}#verification", timeout=30_000)
    shown = [
        (
            row.locator("td").nth(0).inner_text().strip(),
            row.locator("td").nth(1).inner_text().strip(),
        )
        for row in page.locator("#checks tbody tr").all()
    ]
    # Independently: every check on the nodes' own transcripts, read from their stores.
    expected = verify_task(
        task_history(s.chain, s.consortium.deployment, s.task_id),
        s.transcripts(),
        s.params,
        deployment=deployment_checks(s.chain, s.consortium.deployment),
    )
    assert shown == [(verdict(c.status), c.name) for c in expected]
    assert "FAIL" not in {v for v, _ in shown}  # real evidence: nothing fails
    assert ("PASS", "params_commitment") in shown  # the pasted parameters were used
    assert page.locator("#verdict").inner_text().startswith("VERIFIED")

    shot = tmp_path / "task-verification.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert errors == []  # no console errors (and no script at all: CSP forbids it)
    page.close()
