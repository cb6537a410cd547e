"""Regenerate the screenshots in docs/ from the real app: ``python docs/screenshots.py``.

Starts its own Redis, web process (gunicorn + eventlet) and Celery worker with the test suite's
helpers, drives Debian's chromium with the suite's flags, and writes index/job pages at desktop
and phone (390 px) width. Process logs go to test-artifacts/. Run ``make install-dev`` first: it
installs Playwright and copies in the socket.io client the pages load.
"""

import os
import re
import sys
import tempfile

DOCS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(DOCS)
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from clients import submit  # noqa: E402
from conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  (the suite's browser flags)
from processes import free_port, process_env, start_redis, start_web, start_worker  # noqa: E402

SIZES = {"": {"width": 1100, "height": 800}, "-phone": {"width": 390, "height": 844}}
expect.set_options(timeout=20_000)  # as in the browser tests: a busy machine is slow, never stuck


def submit_form(page, url, **fields):
    """Start a sleep job through the form on /, as a person would; returns its id."""
    page.goto(f"{url}/")
    for name, value in fields.items():
        page.fill(f"#sleep-{name}", str(value))
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/jobs/[0-9a-f-]{36}$"))
    return page.url.rsplit("/", 1)[1]


def shoot(url, page, suffix):
    """A list with finished, failed, cancelled and running jobs; then a job page mid-run."""
    # Cancel is shown only to the browser whose form submitted the job (its session holds the token).
    cancelled = submit_form(page, url, steps=100, interval=0.1)
    expect(page.locator("#state")).to_have_text("PROGRESS")
    page.click("#cancel")
    expect(page.locator("#state")).to_have_text("REVOKED")

    done = submit(url, steps=5, interval=0.05)["job_id"]
    failed = submit(url, steps=5, interval=0.05, fail_at=4)["job_id"]
    for job_id in (done, failed):  # visiting a job page adds it to the list
        page.goto(f"{url}/jobs/{job_id}")
        expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    running = submit_form(page, url, steps=40, interval=0.25)

    page.goto(f"{url}/")
    states = {cancelled: "REVOKED", done: "SUCCESS", failed: "FAILURE", running: "PROGRESS"}
    for job_id, state in states.items():
        expect(page.locator(f"li[data-job-id='{job_id}'] .badge")).to_have_text(state)
    page.screenshot(path=os.path.join(DOCS, f"index{suffix}.png"), full_page=True)

    page.goto(f"{url}/jobs/{running}")
    expect(page.locator("#eta")).to_contain_text("left")
    expect(page).to_have_title(re.compile(r"^(4[0-9]|[5-8][0-9])% · sleep$"))
    expect(page.locator("#cancel")).to_be_visible()
    page.screenshot(path=os.path.join(DOCS, f"job{suffix}.png"), full_page=True)
    expect(page.locator("#state")).to_have_text("SUCCESS", timeout=30_000)
    page.screenshot(path=os.path.join(DOCS, f"job-done{suffix}.png"), full_page=True)


def main():
    os.makedirs(os.path.join(ROOT, "test-artifacts"), exist_ok=True)
    logs = tempfile.mkdtemp(prefix="screenshots-", dir=os.path.join(ROOT, "test-artifacts"))
    port = free_port()
    started = [start_redis(port, logs)]
    try:
        env = process_env(f"redis://127.0.0.1:{port}/0", HEARTBEAT_INTERVAL=1)
        started.append(start_web(env, logs))
        started.append(start_worker(env, logs))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for suffix, viewport in SIZES.items():
                # Reduced motion: bars are drawn at their value, not half-way through a transition.
                with browser.new_context(viewport=viewport, reduced_motion="reduce") as context:
                    page = context.new_page()
                    page.on("pageerror", lambda error: print("script error:", error, file=sys.stderr))
                    shoot(started[1].url, page, suffix)
            browser.close()
    finally:
        for proc in reversed(started):
            proc.stop()
    print("screenshots written to", DOCS)


if __name__ == "__main__":
    main()
